//! `planops crdgen`: writes the CRDs generated from the Rust types.

use std::path::PathBuf;

use anyhow::Context;

use crate::api;

/// Arguments of `planops crdgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct CrdgenArgs {
    /// Directories to write one `<plural>.yaml` per kind into.
    #[arg(long = "out", default_values = ["crds", "charts/planops/files/crds"])]
    pub out: Vec<PathBuf>,
    /// Write to standard output instead, as one multi-document stream.
    #[arg(long)]
    pub stdout: bool,
}

pub fn run(args: CrdgenArgs) -> anyhow::Result<()> {
    let crds = api::all_crds();
    if args.stdout {
        for crd in &crds {
            print!("---\n{}", api::crd_yaml(crd)?);
        }
        return Ok(());
    }
    for dir in &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for crd in &crds {
            let path = dir.join(api::crd_file_name(crd));
            std::fs::write(&path, api::crd_yaml(crd)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
