//! riptide-broker
