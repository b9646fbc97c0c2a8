//! Loading: figment layers → raw config → [`super::validate`]. Placeholder.
use super::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration")]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

pub fn load(_path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    Err(ConfigError { problems: vec![] })
}

pub fn load_from_str(_toml: &str) -> Result<Config, ConfigError> {
    Err(ConfigError { problems: vec![] })
}
pub fn config_path(p: Option<std::path::PathBuf>) -> std::path::PathBuf {
    p.unwrap_or_else(|| "gateway.toml".into())
}
impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}
