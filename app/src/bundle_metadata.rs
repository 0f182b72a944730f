//! What the macOS app bundle and the Windows executable say about Prism: the `Info.plist`, the
//! application manifest and the icon. `prism package-files` writes them for the release workflow
//! (`.github/workflows/release.yml`), which cannot run on the project's own machine, so the files
//! are made and checked here.

use std::io::Cursor;

use anyhow::{Context, Result};
use image::ExtendedColorType;
use image::codecs::ico::{IcoEncoder, IcoFrame};
use plist::{Dictionary, Value};

/// The reverse-DNS name used by the desktop entry, the metainfo, the bundle and the manifest.
pub const APP_ID: &str = "org.prism.Prism";

/// The image formats Prism opens: MIME type (the desktop entry) and uniform type identifier
/// (macOS document types).
pub const OPENED_FORMATS: [(&str, &str); 5] = [
    ("image/png", "public.png"),
    ("image/jpeg", "public.jpeg"),
    ("image/webp", "org.webmproject.webp"),
    ("image/tiff", "public.tiff"),
    ("image/bmp", "com.microsoft.bmp"),
];

/// The oldest macOS the release is built for (wgpu's Metal backend and ONNX Runtime's wheels).
const MACOS_MINIMUM: &str = "12.0";

/// The app icon at the sizes a Windows icon holds, from the PNGs the Linux package installs.
const ICON_PNGS: [(u32, &[u8]); 6] = [
    (16, include_bytes!("../../packaging/linux/icons/org.prism.Prism-16.png")),
    (32, include_bytes!("../../packaging/linux/icons/org.prism.Prism-32.png")),
    (48, include_bytes!("../../packaging/linux/icons/org.prism.Prism-48.png")),
    (64, include_bytes!("../../packaging/linux/icons/org.prism.Prism-64.png")),
    (128, include_bytes!("../../packaging/linux/icons/org.prism.Prism-128.png")),
    (256, include_bytes!("../../packaging/linux/icons/org.prism.Prism-256.png")),
];

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `Prism.app/Contents/Info.plist`: the executable, identifier, version, icon and the images the
/// app opens (as an alternate editor, never claiming to be the default).
pub fn info_plist() -> Result<Vec<u8>> {
    let mut document_type = Dictionary::new();
    document_type.insert("CFBundleTypeName".into(), "Image".into());
    document_type.insert("CFBundleTypeRole".into(), "Editor".into());
    document_type.insert("LSHandlerRank".into(), "Alternate".into());
    let types = OPENED_FORMATS.iter().map(|(_, uti)| Value::from(*uti)).collect();
    document_type.insert("LSItemContentTypes".into(), Value::Array(types));

    let mut info = Dictionary::new();
    for (key, value) in [
        ("CFBundleName", "Prism"),
        ("CFBundleDisplayName", "Prism"),
        ("CFBundleIdentifier", APP_ID),
        ("CFBundleExecutable", "prism"),
        ("CFBundleIconFile", "prism.icns"),
        ("CFBundlePackageType", "APPL"),
        ("CFBundleInfoDictionaryVersion", "6.0"),
        ("CFBundleShortVersionString", version()),
        ("CFBundleVersion", version()),
        ("LSMinimumSystemVersion", MACOS_MINIMUM),
        ("LSApplicationCategoryType", "public.app-category.photography"),
    ] {
        info.insert(key.into(), value.into());
    }
    info.insert("NSHighResolutionCapable".into(), true.into());
    info.insert("CFBundleDocumentTypes".into(), Value::Array(vec![document_type.into()]));
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(info)).context("writing Info.plist")?;
    Ok(out)
}

/// The four-part version Windows manifests require (`0.1.0` → `0.1.0.0`).
pub fn windows_version() -> String {
    let mut parts: Vec<&str> = version().split(['.', '-', '+']).take(3).collect();
    parts.resize(3, "0");
    format!("{}.0", parts.join("."))
}

/// `prism.exe.manifest`: per-monitor DPI awareness (sharp UI on laptop screens), long paths, UTF-8
/// as the process code page, Windows 10/11. A fixed template: no crate writes application
/// manifests, and the release workflow embeds this one with the SDK's `mt.exe`.
pub fn windows_manifest() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<assembly xmlns="urn:schemas-microsoft-com:asm.v1" manifestVersion="1.0">
  <assemblyIdentity type="win32" name="{APP_ID}" version="{version}" processorArchitecture="*"/>
  <description>Prism image editor</description>
  <compatibility xmlns="urn:schemas-microsoft-com:compatibility.v1">
    <application>
      <supportedOS Id="{{8e0f7a12-bfb3-4fe8-b9a5-48fd50a15a9a}}"/>
    </application>
  </compatibility>
  <application xmlns="urn:schemas-microsoft-com:asm.v3">
    <windowsSettings>
      <dpiAware xmlns="http://schemas.microsoft.com/SMI/2005/WindowsSettings">true/pm</dpiAware>
      <dpiAwareness xmlns="http://schemas.microsoft.com/SMI/2016/WindowsSettings">PerMonitorV2</dpiAwareness>
      <longPathAware xmlns="http://schemas.microsoft.com/SMI/2016/WindowsSettings">true</longPathAware>
      <activeCodePage xmlns="http://schemas.microsoft.com/SMI/2019/WindowsSettings">UTF-8</activeCodePage>
    </windowsSettings>
  </application>
</assembly>
"#,
        version = windows_version()
    )
}

/// `prism.ico`: the icon's PNGs, 16 to 256 pixels, in one Windows icon.
pub fn windows_icon() -> Result<Vec<u8>> {
    let frames = ICON_PNGS
        .iter()
        .map(|(size, png)| IcoFrame::with_encoded(*png, *size, *size, ExtendedColorType::Rgba8))
        .collect::<image::ImageResult<Vec<_>>>()
        .context("reading the icon's PNGs")?;
    let mut out = Cursor::new(Vec::new());
    IcoEncoder::new(&mut out).encode_images(&frames).context("writing prism.ico")?;
    Ok(out.into_inner())
}
