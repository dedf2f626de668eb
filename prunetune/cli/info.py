"""Commands that describe rather than run: config, reference, list."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml

from prunetune.cli.app import ConfigArg, OverridesArg, app, out, user_facing

@app.command("config")
@user_facing
def show_config(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Validate a config (search space included) and print it resolved, every default filled in."""
    from prunetune.spaces import load_search

    job, _ = load_search(config, overrides or [])
    out.print(yaml.safe_dump(job.to_dict(), sort_keys=False), end="", highlight=False, markup=False)


@app.command()
@user_facing
def reference() -> None:
    """Print the config reference (every field, type, default and meaning) as Markdown."""
    from prunetune.reference import reference_markdown

    out.print(reference_markdown(), end="", highlight=False, markup=False, soft_wrap=True)


@app.command("list")
@user_facing
def list_names(
    what: Annotated[str | None, typer.Argument(help="a kind of plugin (default: every kind)")] = None,
) -> None:
    """List what each registry holds: datasets, models, criteria, schedules, repairs, objectives, samplers, ..."""
    from prunetune.errors import UserError
    from prunetune.registry import LISTED

    if what is not None and what not in LISTED:
        raise UserError(f"list: unknown kind {what!r}; known: {', '.join(LISTED)}")
    for kind, names in LISTED.items():
        if what in (None, kind):
            out.print(f"{kind}:", highlight=False, markup=False)
            width = max(map(len, names.names()), default=0)
            for name in names:
                out.print(f"  {name:<{width}}  {names.describe(name)}".rstrip(), highlight=False, markup=False)
    if what in (None, "models"):
        import torchvision

        out.print("  torchvision: " + ", ".join(torchvision.models.list_models(module=torchvision.models)),
                  highlight=False, markup=False)
        out.print("  timm: any name from timm.list_models(), e.g. resnet18, efficientnet_b0 (prefix 'timm:' to choose)",
                  highlight=False, markup=False)


