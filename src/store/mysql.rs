//! MySQL store (mysql_async). Placeholder until the store lands.
use super::*;
use crate::config::TableNames;

pub struct MysqlStore;

impl MysqlStore {
    pub fn open(_url: &str, _limit: u32, _tables: &TableNames) -> StoreResult<Self> {
        Err(StoreError::Unavailable("mysql store not built yet".into()))
    }
}

impl SessionStore for MysqlStore {
    async fn migrate(&self) -> StoreResult<usize> {
        Err(nyi())
    }
    async fn ping(&self) -> StoreResult<()> {
        Err(nyi())
    }
    async fn create_session(&self, _new: NewSession) -> StoreResult<()> {
        Err(nyi())
    }
    async fn session(&self, _h: &str, _now: Millis) -> StoreResult<Option<SessionRecord>> {
        Err(nyi())
    }
    async fn refresh(&self, _req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        Err(nyi())
    }
    async fn user_sessions(&self, _u: &str, _now: Millis) -> StoreResult<Vec<String>> {
        Err(nyi())
    }
    async fn revoke_session(&self, _h: &str, _now: Millis) -> StoreResult<bool> {
        Err(nyi())
    }
    async fn revoke_user_sessions(&self, _u: &str, _now: Millis) -> StoreResult<u64> {
        Err(nyi())
    }
    async fn update_session_data(
        &self,
        _h: &str,
        _d: serde_json::Value,
        _now: Millis,
    ) -> StoreResult<bool> {
        Err(nyi())
    }
    async fn update_jwt_payload(
        &self,
        _h: &str,
        _p: serde_json::Value,
        _now: Millis,
    ) -> StoreResult<bool> {
        Err(nyi())
    }
    async fn purge_expired(&self, _now: Millis, _f: Millis, _b: u32) -> StoreResult<u64> {
        Err(nyi())
    }
    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        Err(nyi())
    }
    async fn insert_key(&self, _k: StoredKey) -> StoreResult<bool> {
        Err(nyi())
    }
    async fn delete_access_keys_before(&self, _b: Millis) -> StoreResult<u64> {
        Err(nyi())
    }
    async fn revocations_since(&self, _a: u64, _l: u32) -> StoreResult<Vec<Revocation>> {
        Err(nyi())
    }
    async fn revocation_head(&self) -> StoreResult<u64> {
        Err(nyi())
    }
    async fn with_job_lock<T: Send>(
        &self,
        _n: &str,
        _f: impl Future<Output = StoreResult<T>> + Send,
    ) -> StoreResult<Option<T>> {
        Err(nyi())
    }
}
fn nyi() -> StoreError {
    StoreError::Unavailable("not built yet".into())
}
