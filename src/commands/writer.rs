//! `xus writer`: this machine's writer key, which signs pushes to a topic
//! master. The master's configuration lists the public keys it accepts.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::topic::writer_key::WriterSecret;

/// Makes the key (refusing to replace one) and prints its public half.
pub fn new(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let secret = WriterSecret::create(path)?;
    writeln!(out, "{}", secret.public())?;
    eprintln!(
        "writer key stored in {}; add the line above to `writers` of the topic in the master's configuration",
        path.display()
    );
    Ok(())
}

/// Prints the public key.
pub fn show(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let secret = WriterSecret::load(path).with_context(|| {
        format!(
            "reading {} (make a key with `xus writer new`)",
            path.display()
        )
    })?;
    writeln!(out, "{}", secret.public())?;
    Ok(())
}
