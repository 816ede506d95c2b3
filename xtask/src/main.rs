//! `cargo run -p xtask -- assets DIR`: writes the man page (`ecs-diag.1.gz`) and the bash, zsh
//! and fish completions generated from the CLI definition, for the packages to ship. Kept out
//! of the agent so the installed binary does not carry the generators.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("assets") if args.len() == 3 => {
            if let Err(e) = assets(Path::new(&args[2])) {
                eprintln!("xtask assets: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: cargo run -p xtask -- assets DIR");
            std::process::exit(64);
        }
    }
}

fn assets(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = ecs_diag::cli::Cli::command();

    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    // One page per subcommand section would be nicer; the top page lists them with their flags.
    for sub in cmd.get_subcommands() {
        let name = format!("ecs-diag-{}", sub.get_name());
        let mut subpage = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name.clone())).render(&mut subpage)?;
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.join(format!("{name}.1.gz")))?,
            flate2::Compression::best(),
        );
        gz.write_all(&subpage)?;
        gz.finish()?;
    }
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.join("ecs-diag.1.gz"))?,
        flate2::Compression::best(),
    );
    gz.write_all(&page)?;
    gz.finish()?;

    for (shell, file) in [
        (Shell::Bash, "ecs-diag.bash"),
        (Shell::Zsh, "_ecs-diag"),
        (Shell::Fish, "ecs-diag.fish"),
    ] {
        let mut out = std::fs::File::create(dir.join(file))?;
        clap_complete::generate(shell, &mut cmd.clone(), "ecs-diag", &mut out);
    }
    Ok(())
}
