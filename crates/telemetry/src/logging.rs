//! Logging: console (pretty or JSON), optional rotating file, runtime level changes.
//!
//! Every line emitted inside a request carries the fields of the request's span, including
//! `request_id` (and `trace_id` when the request carries a W3C `traceparent`). In JSON the span
//! fields are flattened into the line, so log stores can index `request_id` directly.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};

use crate::json_fields::JsonSpanFields;
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use microframework_core::{Validate, Validation};

use crate::TelemetryError;
use crate::request_fields::RequestFields;

/// Console log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable single lines with colours when the output is a terminal (the `dev` default).
    Pretty,
    /// One JSON object per line with span fields flattened in (the `prod` default).
    Json,
}

/// File rotation period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// A new file every minute (for tests and demos).
    Minutely,
    /// A new file every hour.
    Hourly,
    /// A new file every day.
    #[default]
    Daily,
    /// One file, never rotated.
    Never,
}

/// The `logging.file` section: JSON lines to rotating files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileLogConfig {
    /// Directory of the log files (default `logs`).
    pub dir: PathBuf,
    /// File name prefix (default: the service name).
    pub prefix: Option<String>,
    /// Rotation period.
    pub rotation: Rotation,
    /// How many rotated files to keep (default 7; 0 keeps all).
    pub max_files: usize,
}

impl Default for FileLogConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("logs"), prefix: None, rotation: Rotation::Daily, max_files: 7 }
    }
}

/// The `logging` configuration section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Level or filter directives, such as `info` or `info,sqlx=warn,my_service=debug`
    /// (default `info`). Changes take effect on hot reload.
    pub level: String,
    /// Console format; by default `pretty` in `dev` and `json` in `prod`.
    pub format: Option<LogFormat>,
    /// Colours on the console (default: when stdout is a terminal).
    pub ansi: Option<bool>,
    /// Also write JSON lines to rotating files.
    pub file: Option<FileLogConfig>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: None, ansi: None, file: None }
    }
}

impl Validate for LoggingConfig {
    fn validate(&self, v: &mut Validation) {
        if let Err(e) = check_filter(&self.level) {
            v.error("level", e);
        }
        if let Some(file) = &self.file {
            v.check(!file.dir.as_os_str().is_empty(), "file.dir", "a directory path");
        }
    }
}

type FilterHandle = reload::Handle<EnvFilter, Registry>;

struct Installed {
    filter: FilterHandle,
    _guard: Option<tracing_appender::non_blocking::WorkerGuard>,
}

static INSTALLED: OnceLock<Mutex<Option<Installed>>> = OnceLock::new();

/// Controls the installed logger. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct LogHandle {
    _private: (),
}

impl LogHandle {
    /// Sets the level or filter directives (`debug`, `info,sqlx=warn`, ...) while running.
    pub fn set_level(&self, directives: &str) -> Result<(), TelemetryError> {
        let filter = parse_filter(directives)?;
        let slot = INSTALLED.get().ok_or(TelemetryError::NotInstalled)?;
        let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(installed) = guard.as_ref() {
            installed
                .filter
                .reload(filter)
                .map_err(|e| TelemetryError::InvalidFilter { filter: directives.to_owned(), message: e.to_string() })?;
        }
        Ok(())
    }
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Accepts a level, or directives in which every bare word is a level and every `target=level`
/// names one: `info`, `info,sqlx=warn`. A bare word that is not a level (a typo such as `infoo`)
/// would silently enable everything for a target of that name, so it is refused.
fn check_filter(directives: &str) -> Result<(), String> {
    let expected = "a level (trace, debug, info, warn, error, off) or directives such as `info,sqlx=warn`";
    for d in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("{expected}; `{d}` is not one"));
        }
    }
    if directives.trim().is_empty() {
        return Err(expected.to_owned());
    }
    EnvFilter::try_new(directives).map(drop).map_err(|e| format!("{expected} ({e})"))
}

fn parse_filter(directives: &str) -> Result<EnvFilter, TelemetryError> {
    check_filter(directives)
        .map_err(|message| TelemetryError::InvalidFilter { filter: directives.to_owned(), message })?;
    EnvFilter::try_new(directives)
        .map_err(|e| TelemetryError::InvalidFilter { filter: directives.to_owned(), message: e.to_string() })
}

/// Whether the installed logger writes JSON only (console and file), so that a request span's
/// fields may be kept as values for [`FlatJson`] to write (see `request_fields`).
static JSON_ONLY: AtomicBool = AtomicBool::new(false);

pub(crate) fn json_only() -> bool {
    JSON_ONLY.load(Ordering::Relaxed)
}

#[cfg(test)]
pub(crate) fn set_json_only(on: bool) {
    JSON_ONLY.store(on, Ordering::Relaxed);
}

/// Installs the global logger for `service` (once per process; later calls only apply the level).
///
/// `RUST_LOG`, when set, overrides `config.level` at start-up.
pub fn init(service: &str, config: &LoggingConfig, prod: bool) -> Result<LogHandle, TelemetryError> {
    let level = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| config.level.clone());
    let slot = INSTALLED.get_or_init(|| Mutex::new(None));
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_some() {
        drop(guard);
        let handle = LogHandle { _private: () };
        handle.set_level(&level)?;
        return Ok(handle);
    }
    let filter = parse_filter(&level)?;
    let (filter_layer, filter_handle) = reload::Layer::new(filter);
    let format = config.format.unwrap_or(if prod { LogFormat::Json } else { LogFormat::Pretty });
    let ansi = config.ansi.unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stdout()));

    type Boxed =
        Box<dyn Layer<tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>> + Send + Sync>;
    let mut layers: Vec<Boxed> = Vec::new();
    match format {
        LogFormat::Pretty => layers.push(tracing_subscriber::fmt::layer().with_ansi(ansi).with_target(true).boxed()),
        LogFormat::Json => layers.push(
            tracing_subscriber::fmt::layer().fmt_fields(JsonSpanFields).event_format(FlatJson).with_ansi(false).boxed(),
        ),
    }
    let mut worker_guard = None;
    if let Some(file) = &config.file {
        let rotation = match file.rotation {
            Rotation::Minutely => tracing_appender::rolling::Rotation::MINUTELY,
            Rotation::Hourly => tracing_appender::rolling::Rotation::HOURLY,
            Rotation::Daily => tracing_appender::rolling::Rotation::DAILY,
            Rotation::Never => tracing_appender::rolling::Rotation::NEVER,
        };
        let mut builder = tracing_appender::rolling::RollingFileAppender::builder()
            .rotation(rotation)
            .filename_prefix(file.prefix.clone().unwrap_or_else(|| service.to_owned()))
            .filename_suffix("log");
        if file.max_files > 0 {
            builder = builder.max_log_files(file.max_files);
        }
        let appender = builder
            .build(&file.dir)
            .map_err(|e| TelemetryError::LogFile { dir: file.dir.display().to_string(), message: e.to_string() })?;
        let (writer, g) = tracing_appender::non_blocking(appender);
        worker_guard = Some(g);
        layers.push(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonSpanFields)
                .event_format(FlatJson)
                .with_ansi(false)
                .with_writer(writer)
                .boxed(),
        );
    }
    // Another logger may already be installed (for example by a test harness): keep it.
    if tracing_subscriber::registry().with(filter_layer).with(layers).try_init().is_ok() {
        JSON_ONLY.store(format == LogFormat::Json, Ordering::Relaxed);
    }
    *guard = Some(Installed { filter: filter_handle, _guard: worker_guard });
    Ok(LogHandle { _private: () })
}

/// A JSON event format with the fields of every enclosing span flattened into the line.
///
/// `{"timestamp":"…","level":"INFO","target":"…","message":"…","request_id":"…","span":"request"}`
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut map = serde_json::Map::new();
        map.insert("timestamp".into(), now_rfc3339().into());
        map.insert("level".into(), event.metadata().level().as_str().into());
        map.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<RequestFields>() {
                    fields.for_each(|name, value| {
                        map.insert(name.into(), value.into());
                    });
                }
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.fields.is_empty()
                    && let Ok(serde_json::Value::Object(obj)) =
                        serde_json::from_str::<serde_json::Value>(&fields.fields)
                {
                    map.extend(obj);
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                map.insert("span".into(), name.into());
            }
        }
        let mut visitor = JsonVisitor(&mut map);
        event.record(&mut visitor);
        let line = serde_json::to_string(&map).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

/// The current UTC time as RFC 3339 with milliseconds, without a date-time dependency.
fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let millis = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_rfc3339() {
        let ts = now_rfc3339();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.starts_with("20") && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }

    #[test]
    fn invalid_level_is_a_validation_problem() {
        let cfg = LoggingConfig { level: "loud".into(), ..Default::default() };
        let mut v = Validation::new("logging");
        cfg.validate(&mut v);
        assert_eq!(v.into_problems()[0].0, "logging.level");
        assert!(parse_filter("info,sqlx=warn").is_ok());
        assert!(parse_filter("infoo").is_err());
        assert!(parse_filter("sqlx=loud").is_err());
        assert!(parse_filter("").is_err());
    }
}
