//! riptide-workloads
