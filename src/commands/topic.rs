//! `xus topic`: make and list topic key pairs.

use std::io::Write;

use crate::topic::home::Home;

/// `xus topic new NAME`: prints `topic <name> <id>` and the secret's path.
pub fn new(home: &Home, name: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let secret = home.create_topic(name)?;
    writeln!(out, "topic {name} {}", secret.topic())?;
    eprintln!(
        "secret stored in {} (mode 0600): whoever holds it can move this topic's heads",
        home.root()
            .join("topics")
            .join(format!("{name}.secret"))
            .display()
    );
    Ok(())
}

/// `xus topic list`: prints `<name> <id>` per local topic, or with `json`
/// one `{"event":"topic","name":…,"id":…}` line each.
pub fn list(home: &Home, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    for (name, secret) in home.topics()? {
        if json {
            super::report::print_json(&serde_json::json!({
                "event": "topic",
                "name": name,
                "id": secret.topic().to_string(),
            }));
        } else {
            writeln!(out, "{name} {}", secret.topic())?;
        }
    }
    Ok(())
}
