//! The function's deployment zip: checked to hold an executable `bootstrap` of the configured architecture.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

/// A Lambda instruction set architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Architecture {
    #[serde(rename = "arm64")]
    Arm64,
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Architecture {
    /// The name Lambda uses (`arm64`, `x86_64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        }
    }

    /// The ELF `e_machine` value of binaries for this architecture.
    fn elf_machine(self) -> u16 {
        match self {
            Architecture::Arm64 => 183,
            Architecture::X86_64 => 62,
        }
    }

    fn from_elf_machine(machine: u16) -> Option<Architecture> {
        [Architecture::Arm64, Architecture::X86_64]
            .into_iter()
            .find(|a| a.elf_machine() == machine)
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A zip that passed every check, with what Lambda will report as its `CodeSha256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    pub architecture: Architecture,
    /// Base64 of the SHA-256 of the zip file, as Lambda's `CodeSha256`.
    pub code_sha256: String,
    pub size: u64,
}

/// Why a zip cannot be deployed; every message ends with what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("function artifact {} is missing: run `make build`", .0.display())]
    Missing(PathBuf),
    #[error("function artifact {}: {message}: run `make build`", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Artifact {
    /// Reads and checks the zip at `path` for a function of `architecture`.
    pub fn inspect(path: &Path, architecture: Architecture) -> Result<Artifact, ArtifactError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::Missing(path.to_owned()));
            }
            Err(e) => {
                return Err(ArtifactError::Invalid {
                    path: path.to_owned(),
                    message: format!("cannot read it: {e}"),
                });
            }
        };
        let invalid = |message: String| ArtifactError::Invalid {
            path: path.to_owned(),
            message,
        };
        check_zip(&bytes, architecture).map_err(invalid)?;
        Ok(Artifact {
            path: path.to_owned(),
            architecture,
            code_sha256: code_sha256(&bytes),
            size: bytes.len() as u64,
        })
    }

    /// The zip's bytes, for upload.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }
}

/// Base64 SHA-256, the form of Lambda's `CodeSha256`.
pub fn code_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn check_zip(bytes: &[u8], architecture: Architecture) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip ({e})"))?;
    let mut entry = zip
        .by_name("bootstrap")
        .map_err(|_| "has no `bootstrap` at its root".to_owned())?;
    match entry.unix_mode() {
        Some(mode) if mode & 0o111 != 0 => {}
        Some(mode) => return Err(format!("`bootstrap` is not executable (mode {mode:o})")),
        None => {
            return Err("`bootstrap` has no Unix permissions, so it is not executable".to_owned());
        }
    }
    let mut header = [0u8; 20];
    entry
        .read_exact(&mut header)
        .map_err(|_| "`bootstrap` is too short to be an ELF executable".to_owned())?;
    let found = elf_architecture(&header)?;
    if found != architecture {
        return Err(format!(
            "`bootstrap` is built for {found} but the config says {architecture}"
        ));
    }
    Ok(())
}

/// The architecture of a 64-bit little-endian ELF file, from its first 20 bytes.
fn elf_architecture(header: &[u8; 20]) -> Result<Architecture, String> {
    if &header[..4] != b"\x7fELF" {
        return Err("`bootstrap` is not an ELF executable".to_owned());
    }
    if header[4] != 2 || header[5] != 1 {
        return Err("`bootstrap` is not a 64-bit little-endian ELF".to_owned());
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    Architecture::from_elf_machine(machine).ok_or_else(|| {
        format!("`bootstrap` is for ELF machine {machine}, neither arm64 nor x86_64")
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal ELF header for `machine`.
    pub(crate) fn elf(machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&machine.to_le_bytes());
        h.extend_from_slice(&[0; 44]);
        h
    }

    /// A zip with one entry `name` holding `content` at Unix `mode`.
    pub(crate) fn zip_with(name: &str, content: &[u8], mode: u32) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        out.start_file(name, options).unwrap();
        out.write_all(content).unwrap();
        out.finish().unwrap().into_inner()
    }

    fn inspect(bytes: &[u8], arch: Architecture) -> Result<Artifact, String> {
        let dir = std::env::temp_dir().join(format!("artifact-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.zip", code_sha256(bytes).replace('/', "_")));
        std::fs::write(&path, bytes).unwrap();
        Artifact::inspect(&path, arch).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_an_executable_bootstrap_of_the_right_architecture() {
        let zip = zip_with("bootstrap", &elf(183), 0o755);
        let artifact = inspect(&zip, Architecture::Arm64).unwrap();
        assert_eq!(artifact.code_sha256, code_sha256(&zip));
        assert_eq!(artifact.size, zip.len() as u64);
    }

    #[test]
    fn refuses_each_broken_artifact_with_the_fix() {
        let cases: Vec<(Vec<u8>, Architecture, &str)> = vec![
            (
                zip_with("bootstrap", &elf(62), 0o755),
                Architecture::Arm64,
                "built for x86_64 but the config says arm64",
            ),
            (
                zip_with("bootstrap", &elf(183), 0o755),
                Architecture::X86_64,
                "built for arm64 but the config says x86_64",
            ),
            (
                zip_with("bootstrap", &elf(183), 0o644),
                Architecture::Arm64,
                "not executable (mode 100644)",
            ),
            (
                zip_with("main", &elf(183), 0o755),
                Architecture::Arm64,
                "has no `bootstrap`",
            ),
            (
                zip_with(
                    "bootstrap",
                    b"#!/bin/sh\necho this is a shell script\n",
                    0o755,
                ),
                Architecture::Arm64,
                "not an ELF",
            ),
            (
                zip_with("bootstrap", &elf(40), 0o755),
                Architecture::Arm64,
                "ELF machine 40",
            ),
            (
                b"not a zip".to_vec(),
                Architecture::Arm64,
                "not a readable zip",
            ),
        ];
        for (zip, arch, want) in cases {
            let err = inspect(&zip, arch).unwrap_err();
            assert!(err.contains(want), "got {err:?}, want {want:?}");
            assert!(err.ends_with("run `make build`"), "{err}");
        }
    }

    #[test]
    fn a_missing_zip_says_to_build() {
        let err = Artifact::inspect(Path::new("/nonexistent/bootstrap.zip"), Architecture::Arm64)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "function artifact /nonexistent/bootstrap.zip is missing: run `make build`"
        );
    }
}
