//! The custom resources of group `planops.io`, version `v1alpha1`.
