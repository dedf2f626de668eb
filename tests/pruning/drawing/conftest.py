import re

from prunetune.config import load_config


def job_of(root, model: str, size: int, *overrides: str):
    """A job drawing torchvision's ``model`` at ``size`` px (2 classes: no dataset is read)."""
    return load_config(None, [f"storage.root={root}", f"model.name={model}", "model.num_classes=2",
                              f"data.image_size={size}", *overrides])


def dot_nodes(source: str) -> set[str]:
    """The ids of the node statements of a DOT source (edges are ``a -> b [...]``)."""
    return {match.strip('"') for match in re.findall(r'^\t+("(?:[^"\\]|\\.)*"|[\w.]+) \[', source, re.M)}


def dot_clusters(source: str) -> dict[int, str]:
    """Group index -> the body of its ``cluster_g<index>`` subgraph."""
    return {int(m[1]): m[2] for m in re.finditer(r"subgraph cluster_g(\d+) \{\n(.*?)\n\t\}", source, re.S)}


def cluster_label(body: str) -> str:
    return re.search(r'label="((?:[^"\\]|\\.)*)"', body)[1]
