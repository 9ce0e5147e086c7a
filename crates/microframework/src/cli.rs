//! The command line every service accepts.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use microframework_core::ConfigSources;

/// Command-line flags of a MicroFramework service. Flags override every other source.
#[derive(Debug, Parser)]
#[command(disable_version_flag = true)]
pub(crate) struct Flags {
    /// Environment whose `configs/config.<env>.yaml` is read (overrides APP_ENV; default dev).
    #[arg(long, value_name = "ENV")]
    pub(crate) env: Option<String>,
    /// Directory holding config.yaml (overrides APP_CONFIG_DIR; default ./configs).
    #[arg(long, value_name = "DIR")]
    pub(crate) config_dir: Option<PathBuf>,
    /// Sets a configuration key, e.g. --set server.port=9000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub(crate) set: Vec<(String, String)>,
    /// Shortcut for --set server.port=PORT.
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Shortcut for --set server.host=HOST.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Shortcut for --set logging.level=LEVEL.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Validate the configuration, print the result and exit (0 when valid).
    #[arg(long)]
    pub(crate) check_config: bool,
    /// Check that the service reaches its dependencies (each plugin's probe: connect, ping,
    /// disconnect) with this configuration, print one line per dependency and exit: 0 when all
    /// answer, 1 when one does not, 2 for invalid flags or configuration. Nothing is started.
    #[arg(long)]
    pub(crate) check_dependencies: bool,
    /// Check the running service's liveness on this host (for container HEALTHCHECKs: no curl
    /// needed) and exit 0 when it answers 200, 1 otherwise.
    #[arg(long)]
    pub(crate) healthcheck: bool,
    /// Print the version and exit.
    #[arg(short = 'V', long)]
    pub(crate) version: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE (for example server.port=9000)"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.trim().to_owned(), v.to_owned()))
}

impl Flags {
    pub(crate) fn parse_from_args(name: &str, args: Vec<OsString>) -> Result<Self, clap::Error> {
        let mut cmd = <Self as clap::CommandFactory>::command().name(name.to_owned());
        let matches = cmd.try_get_matches_from_mut(args)?;
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    pub(crate) fn apply(&self, mut sources: ConfigSources) -> ConfigSources {
        if let Some(env) = &self.env {
            sources.env = env.clone();
        }
        if let Some(dir) = &self.config_dir {
            sources.dir = dir.clone();
        }
        if let Some(port) = self.port {
            sources.overrides.push(("server.port".into(), port.to_string()));
        }
        if let Some(host) = &self.host {
            sources.overrides.push(("server.host".into(), host.clone()));
        }
        if let Some(level) = &self.log_level {
            sources.overrides.push(("logging.level".into(), level.clone()));
        }
        sources.overrides.extend(self.set.iter().cloned());
        sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::parse_from_args("svc", args.iter().map(OsString::from).collect())
    }

    #[test]
    fn flags_become_overrides() {
        let f = parse(&["svc", "--env", "prod", "--port", "9000", "--set", "a.b=c=d"]).unwrap();
        let s = f.apply(ConfigSources::new());
        assert_eq!(s.env, "prod");
        assert!(s.overrides.contains(&("server.port".into(), "9000".into())));
        assert!(s.overrides.contains(&("a.b".into(), "c=d".into())));
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse(&["svc", "--port", "http"]).is_err());
        assert!(parse(&["svc", "--set", "novalue"]).is_err());
        assert!(parse(&["svc", "--bogus"]).is_err());
    }
}
