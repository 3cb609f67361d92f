//! `GET /`: the master's status as one server-rendered HTML page for the
//! person who runs it. No script, no external resource, no build step; it
//! reloads itself every [`REFRESH_SECS`] seconds. Every number is also in a
//! `data-value` attribute, exact, as `/status` gives it (the text next to it
//! is rounded for reading).

use std::fmt::Write;

use super::status::{PushRecord, StatusAnswer, TopicStatus};
use super::upload_history::UploadSample;

/// How often the page reloads itself.
pub(crate) const REFRESH_SECS: u32 = 10;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em}\
table{border-collapse:collapse;margin:.4em 0 1em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.num{text-align:right}code{font-size:.95em}\
.bad{color:#a40000;font-weight:600}.ok{color:#1a6b1a}.muted{color:#777}";

/// The whole page.
pub(crate) fn render(status: &StatusAnswer) -> String {
    let mut page = String::with_capacity(8192);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>xus master</title><style>{STYLE}</style></head><body>\n\
         <h1>xus master</h1>\n<p class=\"muted\">As of {} UTC; reloads every {REFRESH_SECS} s. \
         The same as JSON: <a href=\"status\">/status</a>; for Prometheus: \
         <a href=\"metrics\">/metrics</a>.</p>\n",
        utc(status.time)
    );
    swarm(&mut page, status);
    for topic in &status.topics {
        topic_section(&mut page, topic, status.time);
    }
    pushes(&mut page, &status.recent_pushes, status.time);
    page.push_str("</body></html>\n");
    page
}

fn swarm(page: &mut String, status: &StatusAnswer) {
    let s = &status.swarm;
    let rows = [
        ("peers", "peers connected", s.peers, Number::Count),
        (
            "uploaded_bytes",
            "sent to peers by this master since start",
            s.uploaded,
            Number::Bytes,
        ),
        (
            "webseed_sent_bytes",
            "sent as webseed answers (HTTP) since start",
            status.webseed_sent_bytes,
            Number::Bytes,
        ),
        (
            "downloaded_bytes",
            "received since start (pushes)",
            s.downloaded,
            Number::Bytes,
        ),
        (
            "upload_per_second",
            "upload now",
            s.upload_per_second,
            Number::Rate,
        ),
        (
            "download_per_second",
            "download now",
            s.download_per_second,
            Number::Rate,
        ),
    ];
    page.push_str("<section id=\"swarm\"><h2>Swarm</h2><table>\n");
    for (field, label, value, kind) in rows {
        let _ = writeln!(
            page,
            "<tr><th>{label}</th><td class=\"num\" data-field=\"{field}\" data-value=\"{value}\">{}</td></tr>",
            kind.show(value)
        );
    }
    page.push_str("</table>\n");
    upload_chart(page, &status.upload_history, status.time);
    page.push_str(
        "<p class=\"muted\">What peers send each other is not seen by the master; \
         the bytes above are this master's share.</p></section>\n",
    );
}

/// The chart's size in SVG units.
const CHART_WIDTH: u64 = 600;
const CHART_HEIGHT: u64 = 120;

/// The last hour of this master's upload rate as a small inline SVG: one
/// line for BitTorrent (to peers), one for webseed answers (HTTP), each a
/// step per interval between two samples at its mean rate. Every interval
/// also carries its exact rate (`data-rates`, bytes per second).
fn upload_chart(page: &mut String, samples: &[UploadSample], now: u64) {
    // (from, to, mean rate) per interval between two samples.
    let rates = |series: fn(&UploadSample) -> u64| -> Vec<(u64, u64, u64)> {
        samples
            .windows(2)
            .filter(|pair| pair[1].time > pair[0].time)
            .map(|pair| {
                let bytes = series(&pair[1]).saturating_sub(series(&pair[0]));
                let seconds = pair[1].time - pair[0].time;
                (pair[0].time, pair[1].time, bytes / seconds)
            })
            .collect()
    };
    let peers = rates(|s| s.peers);
    let webseed = rates(|s| s.webseed);
    page.push_str("<h3>Upload, last hour</h3>\n");
    if peers.is_empty() {
        page.push_str(
            "<p class=\"muted\" id=\"upload-chart\">No samples yet: one is taken a minute.</p>\n",
        );
        return;
    }
    let top = peers
        .iter()
        .chain(&webseed)
        .map(|&(_, _, rate)| rate)
        .max()
        .unwrap_or(0)
        .max(1);
    let start = now.saturating_sub(3600);
    let _ = write!(
        page,
        "<svg id=\"upload-chart\" width=\"{CHART_WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {CHART_WIDTH} {}\" role=\"img\" \
         aria-label=\"upload rate over the last hour\" data-max-rate=\"{top}\">\
         <rect width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" fill=\"#fafafa\" stroke=\"#ccc\"/>",
        CHART_HEIGHT + 16,
        CHART_HEIGHT + 16
    );
    for (series, color, points) in [
        ("peers", "#1f5fa8", &peers),
        ("webseed", "#c46a00", &webseed),
    ] {
        // A step per interval: its mean rate from one sample to the next.
        let x = |time: u64| time.saturating_sub(start).min(3600) * CHART_WIDTH / 3600;
        let xy: Vec<String> = points
            .iter()
            .flat_map(|&(from, to, rate)| {
                let y = CHART_HEIGHT - 1 - rate.min(top) * (CHART_HEIGHT - 2) / top;
                [format!("{},{y}", x(from)), format!("{},{y}", x(to))]
            })
            .collect();
        let exact: Vec<String> = points.iter().map(|(_, _, rate)| rate.to_string()).collect();
        let _ = write!(
            page,
            "<polyline data-series=\"{series}\" data-rates=\"{}\" points=\"{}\" \
             fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            exact.join(" "),
            xy.join(" ")
        );
    }
    let _ = writeln!(
        page,
        "<text x=\"4\" y=\"12\" font-size=\"11\">{}</text>\
         <text x=\"4\" y=\"{}\" font-size=\"11\" fill=\"#1f5fa8\">to peers</text>\
         <text x=\"70\" y=\"{}\" font-size=\"11\" fill=\"#c46a00\">webseed</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">now</text></svg>",
        Number::Rate.show(top),
        CHART_HEIGHT + 13,
        CHART_HEIGHT + 13,
        CHART_WIDTH - 2,
        CHART_HEIGHT + 13,
    );
}

fn topic_section(page: &mut String, topic: &TopicStatus, now: u64) {
    let _ = write!(
        page,
        "<section class=\"topic\" data-topic=\"{name}\" data-id=\"{id}\">\
         <h2>Topic {name}</h2><p class=\"muted\">id <code>{id}</code></p>\n\
         <h3>Branches</h3><table class=\"branches\"><tr><th>branch</th><th>commit</th>\
         <th>seq</th><th>commit age</th></tr>\n",
        name = escape(&topic.name),
        id = escape(&topic.id),
    );
    for branch in &topic.branches {
        let seq = branch.seq.map_or(String::new(), |s| s.to_string());
        let (age_value, age) = match branch.commit_time {
            Some(time) => {
                let age = i64::try_from(now).unwrap_or(i64::MAX).saturating_sub(time);
                (age.to_string(), duration(age))
            }
            None => (String::new(), "?".into()),
        };
        let _ = writeln!(
            page,
            "<tr class=\"branch\" data-branch=\"{name}\"><td>{name}</td>\
             <td class=\"commit\"><code>{commit}</code></td>\
             <td class=\"seq num\" data-value=\"{seq}\">{seq_shown}</td>\
             <td class=\"age num\" data-value=\"{age_value}\">{age}</td></tr>",
            name = escape(&branch.name),
            commit = escape(&branch.commit),
            seq_shown = if seq.is_empty() {
                "not published"
            } else {
                &seq
            },
        );
    }
    page.push_str(
        "</table>\n<h3>Backups</h3><table class=\"backups\"><tr><th>remote</th>\
         <th>refs behind</th><th>commits behind</th><th>behind for</th>\
         <th>last success</th><th>last error</th></tr>\n",
    );
    for remote in &topic.backups {
        let lag = remote.behind_since.map(|since| now.saturating_sub(since));
        let lag_shown = match lag {
            None => "<span class=\"ok\">in sync</span>".to_owned(),
            Some(lag) => format!(
                "<span class=\"bad\">{}</span>",
                duration(i64::try_from(lag).unwrap_or(i64::MAX))
            ),
        };
        let success = remote.last_success.map_or(String::new(), |t| t.to_string());
        let success_shown = remote
            .last_success
            .map_or("never".to_owned(), |t| format!("{} UTC", utc(t)));
        let error = match (&remote.last_error, remote.refused.is_empty()) {
            (Some(error), _) => format!("<span class=\"bad\">{}</span>", escape(error)),
            (None, false) => format!(
                "<span class=\"bad\">refused: {}</span>",
                escape(&remote.refused.join(", "))
            ),
            (None, true) => String::new(),
        };
        let _ = writeln!(
            page,
            "<tr class=\"backup\" data-remote=\"{url}\"><td><code>{url}</code></td>\
             <td class=\"refs-behind num\" data-value=\"{refs}\">{refs}</td>\
             <td class=\"commits-behind num\" data-value=\"{commits}\">{commits}</td>\
             <td class=\"lag num\" data-value=\"{lag_value}\">{lag_shown}</td>\
             <td class=\"last-success\" data-value=\"{success}\">{success_shown}</td>\
             <td class=\"last-error\">{error}</td></tr>",
            url = escape(&remote.url),
            refs = remote.refs_behind,
            commits = remote.commits_behind,
            lag_value = lag.unwrap_or(0),
        );
    }
    page.push_str("</table></section>\n");
}

fn pushes(page: &mut String, pushes: &[PushRecord], now: u64) {
    page.push_str(
        "<section id=\"pushes\"><h2>Recent pushes</h2><table class=\"pushes\">\
         <tr><th>when</th><th>topic</th><th>branch</th><th>commit</th><th>writer</th>\
         <th>result</th></tr>\n",
    );
    if pushes.is_empty() {
        page.push_str("<tr><td colspan=\"6\" class=\"muted\">none since start</td></tr>\n");
    }
    let text = |value: &Option<String>| value.as_deref().map(escape).unwrap_or_default();
    for push in pushes {
        let class = match push.result {
            "accepted" | "already" | "contained" => "ok",
            _ => "bad",
        };
        let _ = writeln!(
            page,
            "<tr class=\"push\" data-result=\"{result}\"><td data-value=\"{time}\">{ago} ago</td>\
             <td class=\"topic\">{topic}</td><td class=\"branch\">{branch}</td>\
             <td class=\"commit\"><code>{commit}</code></td>\
             <td class=\"writer\"><code>{writer}</code></td>\
             <td class=\"result {class}\">{result}</td></tr>",
            result = push.result,
            time = push.time,
            ago = duration(i64::try_from(now.saturating_sub(push.time)).unwrap_or(i64::MAX)),
            topic = text(&push.topic),
            branch = text(&push.branch),
            commit = text(&push.commit),
            writer = text(&push.writer),
        );
    }
    page.push_str("</table></section>\n");
}

/// How a number reads.
#[derive(Clone, Copy)]
enum Number {
    Count,
    Bytes,
    Rate,
}

impl Number {
    fn show(self, value: u64) -> String {
        match self {
            Self::Count => value.to_string(),
            Self::Bytes => bytes(value),
            Self::Rate => format!("{}/s", bytes(value)),
        }
    }
}

fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut shown = value as f64;
    let mut unit = 0;
    while shown >= 1024.0 && unit + 1 < UNITS.len() {
        shown /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{shown:.1} {}", UNITS[unit])
    }
}

/// `seconds` as a person reads it: `42 s`, `7 min`, `3 h`, `12 d`.
fn duration(seconds: i64) -> String {
    match seconds {
        s if s < 0 => "in the future".into(),
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), without a date library.
fn utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let rest = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Text safe inside an element or a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes_read_right() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_300_000), "2026-12-03 12:13:20");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(600), "10 min");
    }

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn the_chart_draws_each_interval_at_its_mean_rate() {
        let sample = |time, peers, webseed| UploadSample {
            time,
            peers,
            webseed,
        };
        let mut page = String::new();
        upload_chart(
            &mut page,
            &[
                sample(0, 0, 0),
                sample(60, 6000, 0),
                sample(120, 6000, 1200),
            ],
            120,
        );
        assert!(
            page.contains("data-series=\"peers\" data-rates=\"100 0\""),
            "{page}"
        );
        assert!(
            page.contains("data-series=\"webseed\" data-rates=\"0 20\""),
            "{page}"
        );
        assert!(page.contains("data-max-rate=\"100\""), "{page}");
        let mut empty = String::new();
        upload_chart(&mut empty, &[sample(5, 0, 0)], 5);
        assert!(empty.contains("No samples yet"), "{empty}");
    }
}
