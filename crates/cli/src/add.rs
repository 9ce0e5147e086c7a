//! `microframework add FEATURE [--provider P]`.

use std::path::{Path, PathBuf};

use clap::Args;
use microframework_gen::{AddAction, FrameworkSource, GenError, Manifest, apply_add, plan_add};

use crate::Failure;

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The feature: `database` or `auth` (`microframework list features`).
    #[arg(value_name = "FEATURE")]
    feature: String,
    /// Its provider (database: sqlite, postgres, mysql; auth: jwt). Default: the feature's first.
    #[arg(long, short = 'p', value_name = "PROVIDER")]
    provider: Option<String>,
    /// The service's root directory (the one holding .microframework.toml).
    #[arg(long, short = 'd', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Print the diff of what would change, and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace files you edited with the layer's version instead of writing FILE.new beside them
    /// (your edits to those files are lost).
    #[arg(long)]
    force: bool,
}

fn failure(e: GenError) -> Failure {
    match e {
        GenError::Io { .. } | GenError::Template { .. } => Failure::failed(e.to_string()),
        e => Failure::usage(e.to_string()),
    }
}

pub(crate) fn run(args: AddArgs) -> Result<(), Failure> {
    let plan = plan_add(&args.dir, &args.feature, args.provider.as_deref(), args.force).map_err(failure)?;
    if plan.already_applied {
        out!("nothing to do: the {} layer with provider `{}` is applied already", plan.feature, plan.provider);
        return Ok(());
    }
    if args.dry_run {
        for change in &plan.changes {
            if !change.diff.is_empty() {
                out!("{}", change.diff.trim_end());
            }
        }
        out!("");
    }
    for change in &plan.changes {
        let path = change.path.display();
        let note = match change.action {
            AddAction::Merge => " (your edits kept)".to_owned(),
            AddAction::WriteNew => format!(
                " (you edited it: {}; the layer's version is in {}, merge it by hand)",
                change.reason.as_deref().unwrap_or("it cannot be merged"),
                change.written_path().display()
            ),
            AddAction::Overwrite => " (you edited it; --force replaces it)".to_owned(),
            AddAction::SkipDeleted => {
                " (you deleted it; the layer would change it, so look at what it needs)".to_owned()
            }
            AddAction::KeepEdited => {
                " (the layer no longer generates it, but you edited it: delete it if nothing uses it)".to_owned()
            }
            AddAction::Create | AddAction::Rewrite | AddAction::Remove => String::new(),
        };
        out!("  {:<9} {path}{note}", change.action.verb());
    }
    out!("  record    layer {} = {} in .microframework.toml", plan.feature, plan.provider);
    if args.dry_run {
        out!("dry run: nothing written");
        return Ok(());
    }
    let written = apply_add(&plan).map_err(failure)?;
    let toml_changed = written.iter().any(|p| p == Path::new("Cargo.toml"));
    if toml_changed && args.dir.join("Cargo.lock").is_file() && lock_updated(&args.dir) {
        out!("  update    Cargo.lock (cargo update --offline --workspace)");
    }
    let conflicts = plan.conflicts().count();
    out!(
        "added the {} layer ({}) to {}: {} file(s) written{}",
        plan.feature,
        plan.provider,
        args.dir.display(),
        written.len(),
        if conflicts > 0 { format!("; {conflicts} file(s) you edited need a look (see above)") } else { String::new() }
    );
    Ok(())
}

/// Resolves the new dependencies into Cargo.lock without the network; whether the lockfile
/// changed. When the service's lockfile lacks what the layer needs, it is started again from the
/// framework checkout's (as `new` does), whose versions are tested and already downloaded. A
/// failure leaves it to the next `cargo build`.
fn lock_updated(dir: &Path) -> bool {
    let lock = dir.join("Cargo.lock");
    let before = std::fs::read(&lock).ok();
    let mut ok = crate::new::trim_lockfile(dir);
    if !ok
        && let Ok(manifest) = Manifest::read(dir)
        && let FrameworkSource::Path(root) = &manifest.options.framework
        && let Some(previous) = &before
    {
        let _ = std::fs::remove_file(&lock);
        crate::new::seed_lockfile(&dir.join(root), dir, &manifest.options);
        ok = lock.is_file();
        if !ok {
            let _ = std::fs::write(&lock, previous);
        }
    }
    if !ok {
        eprintln!("warning: could not update Cargo.lock offline; `cargo build` updates it (the image build needs it)");
        return false;
    }
    std::fs::read(&lock).ok() != before
}
