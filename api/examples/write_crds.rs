//! Write every CRD into the directory given as the first argument
//! (`hack/generate-crds.sh` runs this into `config/crd/bases`).

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config/crd/bases".into());
    std::fs::create_dir_all(&dir)?;
    for g in flux_reporter_api::crds::all() {
        let path = std::path::Path::new(&dir).join(g.file_name);
        std::fs::write(&path, flux_reporter_api::crds::to_yaml(&g.crd))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
