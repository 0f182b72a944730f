//! Prism's front ends: the egui editor and the headless command line, both on `prism-engine`.

pub mod bench;
pub mod bundle_metadata;
pub mod cli;
pub mod demo;
pub mod doctor;
pub mod editor;
pub mod library;
pub mod package_files;
