//! The io_uring driver (being written).
