//! riptide-faults
