//! Standard output of the commands (the `out!` macro).

use std::io::{ErrorKind, Write};

/// Exit status of a command whose reader went away, as a shell reports a program stopped
/// by `SIGPIPE` (128 + 13).
const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes `args` and a newline to standard output. A reader that has gone ends the process
/// at once with [`BROKEN_PIPE_STATUS`] and no message; any other failure to write ends it
/// with a message and status 1 (`println!` would panic in both cases).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("error: writing to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// A time for people: RFC 3339 in UTC to the second (`2026-12-07T10:41:02Z`).
pub fn when(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
