//! The shim's C functions (csrc/c10d_shim.h) and the one place that calls
//! them: every call passes pointers that live for the call, and turns the
//! shim's error string into a `C10dError`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use tch::Tensor;
use torch_sys::C_tensor;

use crate::{Backend, BatchNorm, C10dError, Rendezvous, Result};

type Group = *mut c_void;

extern "C" {
    fn c10d_free_string(s: *mut c_char);
    fn c10d_group_new(
        host: *const c_char,
        port: c_int,
        prefix: *const c_char,
        rank: c_int,
        world: c_int,
        is_server: c_int,
        timeout_ms: i64,
        kind: c_int,
        device: c_int,
        out: *mut Group,
        err: *mut *mut c_char,
    ) -> c_int;
    fn c10d_group_free(g: Group);
    fn c10d_broadcast(
        g: Group,
        ts: *mut *mut C_tensor,
        n: c_int,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn c10d_allreduce_mean(
        g: Group,
        ts: *mut *mut C_tensor,
        n: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn c10d_barrier(g: Group, err: *mut *mut c_char) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn c10d_sync_batch_norm(
        g: Group,
        x: *mut C_tensor,
        weight: *mut C_tensor,
        bias: *mut C_tensor,
        running_mean: *mut C_tensor,
        running_var: *mut C_tensor,
        momentum: f64,
        eps: f64,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// Turns the shim's status and message into a result; `what` names the
/// operation for the message.
fn check(status: c_int, err: *mut c_char, what: &str) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    // Safety: on failure the shim set `err` to a NUL-terminated string it
    // allocated with malloc, which we read once and free once.
    let message = unsafe {
        let m = CStr::from_ptr(err).to_string_lossy().trim().to_string();
        c10d_free_string(err);
        m
    };
    Err(C10dError::Collective {
        what: what.into(),
        message,
    })
}

fn ptr(t: Option<&Tensor>) -> *mut C_tensor {
    t.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut C_tensor)
}

/// A live process group; freed on drop.
pub struct RawGroup(Group);

impl RawGroup {
    /// Joins the group `r` describes on `backend` (blocks until every rank
    /// has).
    pub fn new(r: &Rendezvous, backend: Backend) -> Result<Self> {
        let nul = |what: &str| C10dError::Config(format!("{what} holds a NUL byte"));
        let host = CString::new(r.host.as_str()).map_err(|_| nul("MASTER_ADDR"))?;
        let prefix = CString::new(r.prefix.as_str()).map_err(|_| nul("the store prefix"))?;
        let timeout_ms = r.timeout.as_millis().min(i64::MAX as u128) as i64;
        let (kind, device) = match backend {
            Backend::Gloo => (0, 0),
            Backend::Nccl { device } => (1, device as c_int),
        };
        let (mut g, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // Safety: `host` and `prefix` outlive the call; `g` and `err` are
        // out-pointers.
        let status = unsafe {
            c10d_group_new(
                host.as_ptr(),
                c_int::from(r.port),
                prefix.as_ptr(),
                r.rank as c_int,
                r.world as c_int,
                c_int::from(r.hosts_store),
                timeout_ms,
                kind,
                device,
                &mut g,
                &mut err,
            )
        };
        check(status, err, "the rendezvous")?;
        Ok(RawGroup(g))
    }

    fn list(ts: &[Tensor]) -> Vec<*mut C_tensor> {
        ts.iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
    }

    pub fn broadcast(&self, ts: &[Tensor], root: usize) -> Result<()> {
        let mut list = Self::list(ts);
        let mut err = std::ptr::null_mut();
        // Safety: the group is live; the tensors outlive the call.
        let status = unsafe {
            c10d_broadcast(
                self.0,
                list.as_mut_ptr(),
                list.len() as c_int,
                root as c_int,
                &mut err,
            )
        };
        check(status, err, "a broadcast")
    }

    pub fn all_reduce_mean(&self, ts: &[Tensor]) -> Result<()> {
        let mut list = Self::list(ts);
        let mut err = std::ptr::null_mut();
        // Safety: the group is live; the tensors outlive the call.
        let status = unsafe {
            c10d_allreduce_mean(self.0, list.as_mut_ptr(), list.len() as c_int, &mut err)
        };
        check(status, err, "an all-reduce")
    }

    pub fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // Safety: the group is live.
        let status = unsafe { c10d_barrier(self.0, &mut err) };
        check(status, err, "a barrier")
    }

    pub fn batch_norm(&self, x: &Tensor, bn: &BatchNorm) -> Result<Tensor> {
        let (mut out, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // Safety: the group is live; the tensors outlive the call; on
        // success `out` is a new `at::Tensor*` that tch's Tensor owns.
        let status = unsafe {
            c10d_sync_batch_norm(
                self.0,
                ptr(Some(x)),
                ptr(bn.affine.map(|a| a.0)),
                ptr(bn.affine.map(|a| a.1)),
                ptr(bn.running.map(|r| r.0)),
                ptr(bn.running.map(|r| r.1)),
                bn.momentum,
                bn.eps,
                &mut out,
                &mut err,
            )
        };
        check(status, err, "a synchronised batch norm")?;
        // Safety: see above.
        Ok(unsafe { Tensor::from_ptr(out) })
    }
}

impl Drop for RawGroup {
    fn drop(&mut self) {
        // Safety: the group was made by c10d_group_new and is freed once.
        unsafe { c10d_group_free(self.0) }
    }
}
