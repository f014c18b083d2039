//! Flags renamed so that one name means one thing across subcommands (`--out` for every output
//! path, `--server-url` for a URL while `--server` is a model): the old name is read for one
//! release, with a warning naming the new one.

/// The value of a renamed flag: the new flag's, else the old one's with a warning on stderr.
pub fn value<T>(new: Option<T>, old: Option<T>, old_name: &str, new_name: &str) -> Option<T> {
    match (new, old) {
        (Some(v), _) => Some(v),
        (None, Some(v)) => {
            warn(old_name, new_name);
            Some(v)
        }
        (None, None) => None,
    }
}

/// Warns that `old_name` is now `new_name`.
pub fn warn(old_name: &str, new_name: &str) {
    eprintln!("warning: {old_name} is renamed {new_name}; the old name goes in 0.2");
}
