fn main() {
    std::process::exit(icloudpd_rs::cli::main());
}
