//! Pure planning logic: detectors, severity, priority and fingerprints. No I/O.
