use anyhow::Result;

/// The OCI runtime features document (runtime-spec features.md).
pub fn run() -> Result<i32> {
    let doc = ward_runtime::features::document();
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}
