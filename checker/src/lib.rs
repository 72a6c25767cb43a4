//! riptide-checker
