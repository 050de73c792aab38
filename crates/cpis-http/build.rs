//! Fetches the NHS.UK design system (`nhsuk-frontend`, pinned in
//! `web/package-lock.json`) with `npm ci` into `OUT_DIR`, prepares its CSS,
//! JavaScript and images, and lists them for `include_bytes!`, so the binary
//! serves them itself and the pages make no third-party request.
//!
//! Without npm or the registry the build still succeeds, with a warning, and
//! tries again on the next build: the pages render unstyled meanwhile. Under
//! `CPIS_REQUIRE_ALL=1` (as in CI) it fails instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=web/package.json");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-changed=web/app.css");
    println!("cargo:rerun-if-env-changed=CPIS_REQUIRE_ALL");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let listing = match prepare(&out) {
        Ok(listing) => listing,
        Err(why) => {
            if env::var("CPIS_REQUIRE_ALL").is_ok_and(|value| value == "1") {
                eprintln!(
                    "CPIS_REQUIRE_ALL=1 but the NHS.UK design system cannot be embedded: {why}"
                );
                std::process::exit(1);
            }
            println!(
                "cargo:warning=the NHS.UK design system is not embedded ({why}); pages will be unstyled"
            );
            // A path that does not exist makes cargo run this script again
            // next time, when npm may be there.
            println!(
                "cargo:rerun-if-changed={}",
                out.join("web/node_modules/nhsuk-frontend/package.json")
                    .display()
            );
            "pub(crate) const DESIGN_SYSTEM_VERSION: &str = \"none\";\npub(crate) static ASSETS: &[(&str, &str, &[u8])] = &[];\n".to_owned()
        }
    };
    if let Err(error) = fs::write(out.join("assets.rs"), listing) {
        eprintln!("cannot write the asset listing: {error}");
        std::process::exit(1);
    }
}

fn prepare(out: &Path) -> Result<String, String> {
    let web = out.join("web");
    fs::create_dir_all(&web).map_err(|e| e.to_string())?;
    for name in ["package.json", "package-lock.json"] {
        fs::copy(Path::new("web").join(name), web.join(name))
            .map_err(|e| format!("cannot copy web/{name}: {e}"))?;
    }
    let package = web.join("node_modules/nhsuk-frontend");
    let lock = fs::read_to_string(web.join("package-lock.json")).map_err(|e| e.to_string())?;
    let installed_lock =
        fs::read_to_string(web.join("node_modules/.package-lock.json")).unwrap_or_default();
    let version = version_in(&lock).ok_or("no nhsuk-frontend version in the lockfile")?;
    if !package.join("dist").is_dir() || version_in(&installed_lock) != Some(version.clone()) {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&web)
            .status()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if !status.success() {
            return Err(format!("npm ci failed ({status})"));
        }
    }
    let dist = package.join("dist/nhsuk");
    let assets = out.join("assets");
    fs::create_dir_all(&assets).map_err(|e| e.to_string())?;
    let prefix = format!("/assets/nhsuk-{version}");

    let css = fs::read_to_string(dist.join("nhsuk-frontend.min.css"))
        .map_err(|e| format!("cannot read the design system's CSS: {e}"))?;
    let app_css = fs::read_to_string("web/app.css").map_err(|e| e.to_string())?;
    let css = format!(
        "{}\n{app_css}",
        without_remote_fonts(&css).replace("url(/assets/", &format!("url({prefix}/"))
    );
    fs::write(assets.join("nhsuk-frontend.min.css"), css).map_err(|e| e.to_string())?;
    fs::copy(
        dist.join("nhsuk-frontend.min.js"),
        assets.join("nhsuk-frontend.min.js"),
    )
    .map_err(|e| e.to_string())?;

    let mut files = vec![
        (
            "nhsuk-frontend.min.css".to_owned(),
            "text/css; charset=utf-8",
        ),
        (
            "nhsuk-frontend.min.js".to_owned(),
            "text/javascript; charset=utf-8",
        ),
    ];
    fs::create_dir_all(assets.join("images")).map_err(|e| e.to_string())?;
    let mut images: Vec<_> = fs::read_dir(dist.join("assets/images"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    images.sort();
    for image in images {
        let content_type = match image.rsplit('.').next() {
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            _ => continue,
        };
        fs::copy(
            dist.join("assets/images").join(&image),
            assets.join("images").join(&image),
        )
        .map_err(|e| e.to_string())?;
        files.push((format!("images/{image}"), content_type));
    }

    let mut listing = format!(
        "pub(crate) const DESIGN_SYSTEM_VERSION: &str = {version:?};\npub(crate) static ASSETS: &[(&str, &str, &[u8])] = &[\n"
    );
    for (file, content_type) in files {
        let _ = writeln!(
            listing,
            "    ({file:?}, {content_type:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/assets/{file}\"))),"
        );
    }
    listing.push_str("];\n");
    Ok(listing)
}

/// The version of `nhsuk-frontend` a package lock records.
fn version_in(lock: &str) -> Option<String> {
    let at = lock.find("\"node_modules/nhsuk-frontend\"")?;
    let rest = &lock[at..];
    let version = rest.find("\"version\"")?;
    let rest = &rest[version + "\"version\"".len()..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_owned())
}

/// The CSS without `@font-face` rules that fetch fonts from another site:
/// the pages fall back to the design system's own next font (Arial).
fn without_remote_fonts(css: &str) -> String {
    let mut kept = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(at) = rest.find("@font-face") {
        kept.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            rest = "";
            break;
        };
        let rule = &rest[at..at + end + 1];
        if !rule.contains("://") {
            kept.push_str(rule);
        }
        rest = &rest[at + end + 1..];
    }
    kept.push_str(rest);
    kept
}
