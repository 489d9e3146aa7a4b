"""`zoo`: one command line for every domain.

    zoo <domain> train|finetune|eval|predict|export|<domain verb> [hydra overrides] [-m] [--cfg job]
    zoo <domain> --help
    zoo list [PATTERN] [--pretrained]
    zoo download NAME --to DIR
    zoo bench SUITE [--quick]
    zoo --version

Domain verbs run a Hydra app whose configs live in `domains/<domain>/configs`
(found with `pkg://`, so an installed copy works). Before handing over to Hydra
the command is composed once here, so a bad override or an unknown model name
becomes one line and exit code 2 instead of a traceback; `--verbose` shows it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

BUILTIN_VERBS = ("train", "finetune", "eval", "predict", "export")
EXIT_USER_ERROR = 2


def fail(message: str) -> None:
    print(f"zoo: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def user_error_in(err: BaseException) -> ZooError | None:
    """The ZooError behind an exception, looking through Hydra's wrappers."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ZooError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


# ----------------------------------------------------------------------------- domains


def domains() -> list[str]:
    import domains as package

    found = {
        p.name for root in package.__path__ for p in Path(root).iterdir() if (p / "configs" / "train.yaml").is_file()
    }
    return sorted(found)


def domain_configs(domain: str) -> Any:
    return resources.files(f"domains.{domain}") / "configs"


def domain_verbs(domain: str) -> list[str]:
    extra = [p.name[:-5] for p in domain_configs(domain).iterdir() if p.name.endswith(".yaml")]
    return sorted(set(BUILTIN_VERBS) | set(extra))


def config_for(domain: str, verb: str) -> tuple[str, list[str]]:
    """(config name, extra overrides) for `zoo <domain> <verb>`."""
    if (domain_configs(domain) / f"{verb}.yaml").is_file():
        return verb, []
    if verb in BUILTIN_VERBS:
        return "train", [f"mode={verb}"]
    fail(f"`{verb}` is not a verb of domain {domain!r}; choose one of: {', '.join(domain_verbs(domain))}")


def print_domain_help(domain: str) -> None:
    module = importlib.import_module(f"domains.{domain}")
    doc = (module.__doc__ or "").strip()
    print(f"zoo {domain} <verb> [overrides]\n")
    if doc:
        print(doc + "\n")
    print("verbs: " + ", ".join(domain_verbs(domain)))
    configs = domain_configs(domain)
    print("\nconfig groups (choose with group=option):")
    for group in sorted(p for p in configs.iterdir() if p.is_dir() and not p.name.startswith("_")):
        options = sorted(p.name[:-5] for p in group.iterdir() if p.name.endswith(".yaml"))
        if options:
            print(f"  {group.name}: {', '.join(options)}")
    shared = resources.files("zoo") / "configs"
    for group in ("trainer", "callbacks", "logger"):
        options = sorted(p.name[:-5] for p in (shared / group).iterdir() if p.name.endswith(".yaml"))
        print(f"  {group}: {', '.join(options)}")
    examples = getattr(module, "EXAMPLES", [])
    if examples:
        print("\nexamples:")
        for example in examples:
            print(f"  {example}")
    print("\nAny config value can be overridden (key=value); `--cfg job` prints the composed config, -m sweeps.")


# ----------------------------------------------------------------------------- hydra


def preflight_overrides(overrides: Sequence[str]) -> list[str]:
    """Overrides for one trial composition: the first value of each sweep, no hydra.* keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.get_key_element().lstrip("+~").startswith("hydra."):
            continue
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(override.input_line)
    return out


def quote_plain_values(args: Sequence[str]) -> list[str]:
    """Quote `key=value` arguments whose value Hydra's grammar cannot read as written.

    A shell leaves `history="Toy Story (1995); Heat (1995)"` as `history=Toy Story (1995); Heat (1995)`,
    and `data.decimal=,` is Hydra sweep syntax: both fail to parse, and the user meant the plain text.
    Such a value is passed as a quoted string; values that open a list, dict or quote are left to
    Hydra's own error, since quoting would silently turn a broken structure into text.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if arg.startswith("-") or not sep or not key or value[:1] in ("[", "{", "'", '"'):
            out.append(arg)
            continue
        try:
            parser.parse_overrides([arg])
            out.append(arg)
        except OverrideParseException:
            # Inside Hydra quotes a backslash is literal except before a quote or the closing quote.
            escaped = re.sub(r"(\\*)('|$)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), value)
            out.append(f"{key}='{escaped}'")
    return out


def preflight(domain: str, config_name: str, overrides: Sequence[str]) -> None:
    """Compose once so config mistakes are reported as one line before Hydra runs."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from zoo.training.runner import check_model_name
    from zoo.training.validation import check_config

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=f"domains.{domain}.configs", version_base="1.3"):
            cfg = compose(config_name, overrides=preflight_overrides(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        causes = [str(err)] + ([str(err.__cause__)] if err.__cause__ else [])
        text = " ".join(" ".join(c.split("Config search path")[0].split()) for c in causes)
        fail(
            f"bad config or override: {text} (see `zoo {domain} --help`; "
            f"`zoo {domain} {config_name} --cfg job` prints the config)"
        )
    finally:
        GlobalHydra.instance().clear()
    check_model_name(cfg)
    check_config(cfg)  # before Hydra makes a run folder


def run_domain(domain: str, verb: str, args: list[str], verbose: bool) -> None:
    import hydra

    config_name, extra = config_for(domain, verb)
    hydra_args = [*quote_plain_values(args), *extra]
    flags = {"-m", "--multirun", "--cfg", "-c", "--info", "--help", "-h", "--resolve", "--package", "-p"}
    overrides = [
        a
        for i, a in enumerate(hydra_args)
        if a not in flags
        and not a.startswith("-")
        and not (i and hydra_args[i - 1] in ("--cfg", "-c", "--package", "-p", "--info"))
    ]
    preflight(domain, config_name, overrides)

    full_argv = list(sys.argv)

    @hydra.main(version_base="1.3", config_path=f"pkg://domains.{domain}.configs", config_name=config_name)
    def job(cfg):
        # Lightning relaunches DDP ranks with sys.argv: give it the whole `zoo <domain> <verb> ...` line.
        sys.argv = full_argv
        from zoo.training import run

        try:
            result = run(cfg)
        except Exception as err:
            user_error = user_error_in(err)
            if user_error is None:
                raise
            # The run folder keeps the reason in its main.log; --verbose adds the traceback, same exit code.
            logging.getLogger("zoo").error("%s", user_error)
            if verbose:
                traceback.print_exc()
            fail(str(user_error))
        print_result(result)
        return result

    if verbose:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv = [full_argv[0], *hydra_args]
    try:
        job()
    finally:
        sys.argv = full_argv


def print_result(result: dict[str, Any]) -> None:
    if not isinstance(result, dict):
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"zoo: {result.get('mode', 'run')} finished", show_header=False)
    for key, value in result.items():
        if key == "metrics":
            for name, metric in value.items():
                if name.startswith("lr-"):
                    continue
                table.add_row(name, f"{metric:.4g}" if isinstance(metric, float) else str(metric))
        else:
            table.add_row(key, str(value))
    Console(stderr=False).print(table)


# ----------------------------------------------------------------------------- other commands


def cmd_list(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from zoo.registry import describe, get_pretrained, list_models, list_pretrained

    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    if args.pretrained:
        table = Table("name", "source", "description")
        for name in list_pretrained(pattern):
            spec = get_pretrained(name)
            table.add_row(name, spec.source, spec.description)
    else:
        table = Table("name", "family", "parameters", "recurrent", "pretrained tags")
        for name in list_models(pattern):
            info = describe(name)
            table.add_row(
                name, info["family"], f"{info['params']:,}", "yes" if info["recurrent"] else "", ", ".join(info["tags"])
            )
    Console(width=160).print(table)


def cmd_download(args: argparse.Namespace) -> None:
    from zoo import download

    folder = download(args.name, args.to)
    print(f"wrote {folder}; on the offline machine: HF_HUB_OFFLINE=1 zoo <domain> finetune weights={folder}")


def cmd_bench(args: argparse.Namespace) -> None:
    try:
        module = importlib.import_module(f"benchmarks.{args.suite}")
    except ModuleNotFoundError:
        fail(
            f"no benchmark suite {args.suite!r}: benchmarks ship with the source tree; "
            "run from a checkout (see docs/performance.md)"
        )
    sys.argv = [f"benchmarks.{args.suite}", *args.rest]
    module.main()


def parse_global(argv: list[str]) -> argparse.Namespace:
    from zoo import __version__

    parser = argparse.ArgumentParser(
        prog="zoo",
        description="longzoo: long-sequence models for domain scientists.",
        epilog=f"domains: {', '.join(domains())}. `zoo <domain> --help` for a domain's verbs and configs.",
    )
    parser.add_argument("--version", action="version", version=f"longzoo {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("list", help="table of registered models")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--pretrained", action="store_true", help="list weight tags instead")
    p = sub.add_parser("download", help="fetch weights into a folder for an offline machine")
    p.add_argument("name", help="arch.tag or hf://org/repo[@rev]")
    p.add_argument("--to", required=True, help="destination folder")
    p = sub.add_parser("bench", help="run a benchmark suite from benchmarks/")
    p.add_argument("suite")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    try:
        if argv and argv[0] in domains():
            domain, rest = argv[0], argv[1:]
            if not rest or rest[0] in ("-h", "--help"):
                print_domain_help(domain)
                return
            run_domain(domain, rest[0], rest[1:], verbose)
            return
        if argv and not argv[0].startswith("-") and argv[0] not in ("list", "download", "bench"):
            import difflib

            close = difflib.get_close_matches(argv[0], domains() + ["list", "download", "bench"], n=3)
            fail(
                f"unknown command or domain {argv[0]!r}{'; did you mean ' + ', '.join(close) + '?' if close else ''} "
                f"(domains: {', '.join(domains())})"
            )
        args = parse_global(argv)
        {"list": cmd_list, "download": cmd_download, "bench": cmd_bench}.get(
            args.command, lambda a: parse_global(["--help"])
        )(args)
    except ZooError as err:
        if verbose:
            traceback.print_exc()
        fail(str(err))


if __name__ == "__main__":
    main()
