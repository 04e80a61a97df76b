fn main() { std::process::exit(halo_core::cli::main()) }
