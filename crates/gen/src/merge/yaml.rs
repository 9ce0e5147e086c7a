//! Three-way merge of block-style YAML, line-based, keeping comments and key order.
//!
//! A document is read as a block mapping: each entry is its key line, the more-indented lines
//! under it, and the comments and blank lines just above it. Values in flow style (`{}`, `[a]`)
//! and block scalars (`|`, `>`) are compared as text. A block sequence is split into items at its
//! `- ` lines; an item that starts with `- name: X` is matched by that name, any other by its
//! text. Documents separated by `---` are merged one by one.

type Lines = Vec<String>;

pub(super) fn merge(base: &str, target: &str, disk: &str) -> Result<String, String> {
    let (b, t, d) = (documents(base), documents(target), documents(disk));
    if b.len() != t.len() || d.len() != b.len() {
        return Err("the file has a different number of `---` documents than generated".into());
    }
    let mut out: Vec<Lines> = Vec::with_capacity(d.len());
    for ((b, t), d) in b.iter().zip(&t).zip(&d) {
        out.push(merge_block(b, t, d, "")?);
    }
    let mut text = out.iter().map(|doc| doc.join("\n")).collect::<Vec<_>>().join("\n---\n");
    if disk.ends_with('\n') || disk.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

fn documents(text: &str) -> Vec<Lines> {
    let mut docs = vec![Vec::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(Vec::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push(line.trim_end().to_owned());
        }
    }
    docs
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn is_item(line: &str) -> bool {
    let t = line.trim_start_matches(' ');
    t == "-" || t.starts_with("- ")
}

/// The key of a `key: value` or `key:` line: the text before the first `:` that ends the line or
/// is followed by a space, outside quotes.
fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start_matches(' ');
    let bytes = t.as_bytes();
    let mut quote = None;
    for (i, &c) in bytes.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if i == 0 => quote = Some(c),
            (None, b':') if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                return (i > 0).then(|| t[..i].to_owned());
            }
            (None, b'#') if i > 0 && bytes[i - 1] == b' ' => return None,
            _ => {}
        }
    }
    None
}

/// What follows `key:` on its line, without a trailing comment.
fn inline_value(line: &str) -> &str {
    let t = line.trim_start_matches(' ');
    let Some(key) = key_of(line) else { return t };
    let rest = t[key.len() + 1..].trim();
    if rest.starts_with('#') { "" } else { rest }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Comments and blank lines above it.
    lead: Lines,
    /// Its key (for a sequence item, the name or the text that identifies it).
    key: String,
    /// The key line (or the `- ` line) and everything under it.
    lines: Lines,
}

impl Entry {
    fn text(&self) -> Lines {
        let mut all = self.lead.clone();
        all.extend(self.lines.iter().cloned());
        all
    }

    fn same(&self, other: &Entry) -> bool {
        self.text() == other.text()
    }

    /// The lines under the key line, for a `key:` whose value is a nested block.
    fn children(&self) -> Option<&[String]> {
        let head = self.lines.first()?;
        (inline_value(head).is_empty() && self.lines[1..].iter().any(|l| is_content(l))).then(|| &self.lines[1..])
    }
}

#[derive(Debug, Clone)]
struct Block {
    seq: bool,
    indent: usize,
    entries: Vec<Entry>,
    tail: Lines,
}

/// Reads `lines` as a block mapping or a block sequence; `None` for anything else.
fn parse(lines: &[String]) -> Option<Block> {
    let first = lines.iter().find(|l| is_content(l))?;
    let indent = indent_of(first);
    let seq = is_item(first);
    let mut entries: Vec<Entry> = Vec::new();
    let mut pending: Lines = Vec::new();
    for line in lines {
        if !is_content(line) {
            pending.push(line.clone());
            continue;
        }
        let ind = indent_of(line);
        let starts_entry = ind == indent && (if seq { is_item(line) } else { !is_item(line) });
        if ind < indent || (ind == indent && !starts_entry && (seq || entries.is_empty())) {
            return None;
        }
        if starts_entry {
            let key = if seq { item_key(line) } else { key_of(line)? };
            entries.push(Entry { lead: std::mem::take(&mut pending), key, lines: vec![line.clone()] });
        } else {
            // A more-indented line, or a sequence at the key's own indent: part of the entry.
            let entry = entries.last_mut()?;
            entry.lines.append(&mut pending);
            entry.lines.push(line.clone());
        }
    }
    if seq {
        // Items are told apart by text, unless they carry a name; the full text is the key.
        for e in &mut entries {
            if !e.key.starts_with("name=") {
                e.key = e.lines.join("\n");
            }
        }
    }
    Some(Block { seq, indent, entries, tail: pending })
}

fn item_key(line: &str) -> String {
    let rest = line.trim_start_matches(' ').trim_start_matches('-').trim_start();
    match key_of(rest) {
        Some(k) if k == "name" => format!("name={}", inline_value(rest)),
        _ => String::new(),
    }
}

fn shift(lines: &[String], from: usize, to: usize) -> Lines {
    lines
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                l.clone()
            } else if to >= from {
                format!("{}{l}", " ".repeat(to - from))
            } else {
                let cut = (from - to).min(indent_of(l));
                l[cut..].to_owned()
            }
        })
        .collect()
}

fn reindent(e: &Entry, from: usize, to: usize) -> Entry {
    Entry { lead: shift(&e.lead, from, to), key: e.key.clone(), lines: shift(&e.lines, from, to) }
}

fn join(path: &str, key: &str) -> String {
    let key = key.strip_prefix("name=").map(|n| format!("[name={n}]")).unwrap_or_else(|| key.to_owned());
    if path.is_empty() { key } else { format!("{path}.{key}") }
}

/// Merges a whole block (a document, or the value of an entry).
fn merge_block(b: &[String], t: &[String], d: &[String], path: &str) -> Result<Lines, String> {
    if b == t {
        return Ok(d.to_vec());
    }
    if d == b {
        return Ok(t.to_vec());
    }
    if d == t {
        return Ok(d.to_vec());
    }
    let here = if path.is_empty() { "the document".to_owned() } else { format!("`{path}`") };
    match (parse(b), parse(t), parse(d)) {
        (Some(bb), Some(tb), Some(db)) if bb.seq == tb.seq && tb.seq == db.seq => {
            let merged = merge_entries(&bb, &tb, db, path)?;
            let mut out = Vec::new();
            for e in &merged.entries {
                out.extend(e.text());
            }
            out.extend(merged.tail);
            Ok(out)
        }
        (None, None, None) if b.iter().all(|l| !is_content(l)) => Ok(d.to_vec()),
        _ => Err(format!("{here} was edited, and the layer changes it too")),
    }
}

fn merge_entries(b: &Block, t: &Block, mut d: Block, path: &str) -> Result<Block, String> {
    let find = |entries: &[Entry], key: &str| entries.iter().position(|e| e.key == key);
    for (i, te) in t.entries.iter().enumerate() {
        let be = find(&b.entries, &te.key).map(|i| &b.entries[i]);
        if be.is_some_and(|be| be.same(te)) {
            continue;
        }
        let here = join(path, &te.key);
        let shown = if te.key.contains('\n') { te.lines[0].trim().to_owned() } else { here.clone() };
        match (be, find(&d.entries, &te.key)) {
            (None, None) => {
                // After the nearest entry before it that the file has; else before the nearest
                // one after it; else at the end.
                let after = t.entries[..i].iter().rev().find_map(|p| find(&d.entries, &p.key)).map(|j| j + 1);
                let before = || t.entries[i + 1..].iter().find_map(|n| find(&d.entries, &n.key));
                let at = after.or_else(before).unwrap_or(d.entries.len());
                d.entries.insert(at, reindent(te, t.indent, d.indent));
            }
            (None, Some(j)) if d.entries[j].same(te) => {}
            (None, Some(_)) => return Err(format!("`{shown}` is already in the file with another value")),
            (Some(_), None) => return Err(format!("`{shown}` was removed from the file, and the layer changes it")),
            (Some(be), Some(j)) => {
                let de = &d.entries[j];
                if de.same(be) {
                    d.entries[j] = reindent(te, t.indent, d.indent);
                } else if !de.same(te) {
                    d.entries[j] = merge_entry(be, te, de, &here, t.indent, d.indent)?;
                }
            }
        }
    }
    for be in &b.entries {
        if find(&t.entries, &be.key).is_some() {
            continue;
        }
        if let Some(j) = find(&d.entries, &be.key) {
            if d.entries[j].same(be) {
                d.entries.remove(j);
            } else {
                return Err(format!("`{}` was edited, and the layer removes it", join(path, &be.key)));
            }
        }
    }
    if d.tail == b.tail {
        d.tail = t.tail.clone();
    }
    Ok(d)
}

/// Merges an entry all three sides changed: key by key when its value is a nested block.
fn merge_entry(b: &Entry, t: &Entry, d: &Entry, path: &str, t_indent: usize, d_indent: usize) -> Result<Entry, String> {
    let lead = if d.lead == b.lead { shift(&t.lead, t_indent, d_indent) } else { d.lead.clone() };
    let conflict = || format!("`{path}` was edited, and the layer changes it too");
    let (bh, th, dh) = (&b.lines[0], &t.lines[0], &d.lines[0]);
    // A sequence item that is a mapping (`- name: x` and the keys under it): merged as the
    // mapping, with its `- ` turned into spaces.
    let as_mapping = |lines: &[String]| -> Lines {
        let mut out = lines.to_vec();
        if let Some(first) = out.first_mut() {
            let ind = indent_of(first);
            first.replace_range(ind..ind + 1, " ");
        }
        out
    };
    if is_item(dh) {
        if !(is_item(bh) && is_item(th)) {
            return Err(conflict());
        }
        let merged = merge_block(
            &shift(&as_mapping(&b.lines), t_indent, d_indent),
            &shift(&as_mapping(&t.lines), t_indent, d_indent),
            &as_mapping(&d.lines),
            path,
        )?;
        let mut lines = merged;
        match lines.iter_mut().find(|l| is_content(l)) {
            Some(first) if first.len() > d_indent && first.as_bytes()[d_indent] == b' ' => {
                first.replace_range(d_indent..d_indent + 1, "-");
            }
            _ => return Err(conflict()),
        }
        return Ok(Entry { lead, key: d.key.clone(), lines });
    }
    let (Some(bc), Some(tc), Some(dc)) = (b.children(), t.children(), d.children()) else {
        // A scalar or flow value: the user's, if only the layer's lead comment changed.
        if bh == th && b.lines == t.lines {
            return Ok(Entry { lead, key: d.key.clone(), lines: d.lines.clone() });
        }
        return Err(conflict());
    };
    if inline_value(bh) != inline_value(th) || key_of(dh) != key_of(th) {
        return Err(conflict());
    }
    let merged = merge_block(&shift(bc, t_indent, d_indent), &shift(tc, t_indent, d_indent), dc, path)?;
    let mut lines = vec![dh.clone()];
    lines.extend(merged);
    Ok(Entry { lead, key: d.key.clone(), lines })
}

#[cfg(test)]
mod tests {
    use super::merge;

    const BASE: &str = "\
# svc configuration
service:
  name: svc
log:
  level: info # or debug

server:
  port: 8080
";

    const TARGET: &str = "\
# svc configuration
service:
  name: svc
log:
  level: info # or debug

database:
  url: sqlite://data/svc.db
  migrate: true

server:
  port: 8080
";

    #[test]
    fn an_untouched_file_becomes_the_target() {
        assert_eq!(merge(BASE, TARGET, BASE).unwrap(), TARGET);
    }

    #[test]
    fn a_section_is_inserted_beside_user_edits() {
        let disk = BASE.replace("level: info # or debug", "level: debug # chatty\n  format: json");
        let disk = disk.replace("  port: 8080\n", "  port: 8080\n# mine\nextra:\n  on: true\n");
        let merged = merge(BASE, TARGET, &disk).unwrap();
        let want = TARGET.replace("level: info # or debug", "level: debug # chatty\n  format: json");
        let want = want.replace("  port: 8080\n", "  port: 8080\n# mine\nextra:\n  on: true\n");
        assert_eq!(merged, want);
    }

    #[test]
    fn nested_mappings_and_named_items_merge() {
        let base = "\
spec:
  replicas: 2
  containers:
    - name: svc
      image: svc:1
      ports:
        - containerPort: 8080
";
        let target = "\
spec:
  replicas: 2
  containers:
    - name: svc
      image: svc:1
      ports:
        - containerPort: 8080
      envFrom:
        - secretRef:
            name: svc
";
        let disk = base.replace("replicas: 2", "replicas: 5").replace("image: svc:1", "image: svc:2");
        let merged = merge(base, target, &disk).unwrap();
        assert_eq!(merged, target.replace("replicas: 2", "replicas: 5").replace("image: svc:1", "image: svc:2"));
    }

    #[test]
    fn scalar_lists_gain_items_and_keep_the_users() {
        let base = "resources:\n  - deployment.yaml\n  - service.yaml\n";
        let target = "resources:\n  - deployment.yaml\n  - service.yaml\n  - secret.yaml\n";
        let disk = "resources:\n  - deployment.yaml\n  - service.yaml\n  - ingress.yaml\n";
        assert_eq!(
            merge(base, target, disk).unwrap(),
            "resources:\n  - deployment.yaml\n  - service.yaml\n  - secret.yaml\n  - ingress.yaml\n"
        );
    }

    #[test]
    fn a_value_both_changed_is_a_conflict_named_by_path() {
        let base = "server:\n  port: 8080\n";
        let target = "server:\n  port: 9000\n";
        let disk = "server:\n  port: 7000\n";
        let e = merge(base, target, disk).unwrap_err();
        assert!(e.contains("server.port"), "{e}");
        let e = merge("a: {}\n", "a:\n  b: 1\n", "a: {x: 1}\n").unwrap_err();
        assert!(e.contains("`a`"), "{e}");
    }

    #[test]
    fn documents_merge_one_by_one() {
        let base = "kind: A\nx: 1\n---\nkind: B\ny: 1\n";
        let target = "kind: A\nx: 1\n---\nkind: B\ny: 1\nz: 2\n";
        let disk = "kind: A\nx: 3\n---\nkind: B\ny: 1\n";
        assert_eq!(merge(base, target, disk).unwrap(), "kind: A\nx: 3\n---\nkind: B\ny: 1\nz: 2\n");
    }
}
