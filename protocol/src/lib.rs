//! placeholder
pub mod wire {
    /// Hard upper bound of one encoded frame on any transport.
    pub const FRAME_BYTES_MAX: usize = 1 << 20;
}
