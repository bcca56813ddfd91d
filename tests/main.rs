//! The one end-to-end test binary: real servers on port 0, real RocksDB in
//! temp dirs, talking gRPC.

mod e2e;
