"""The layout stays readable: every import between the project's modules runs one way (no
circle, function-level imports included), no function is longer than a screen, and every
module says what it is for in the first line of its docstring."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80


def project_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project (tests and .venv left out)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", ".venv") or any(p.startswith(".") for p in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, modules: dict) -> set[str]:
    """Project modules that ``path`` imports anywhere in its body (lazy imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` imports the submodule; otherwise the module.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        out |= {n for n in names if n in modules}
    return out


def import_graph() -> dict[str, set[str]]:
    modules = project_files()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    graph = import_graph()
    assert {"trainer", "model", "transfer", "evaluation", "listening_page"} <= set(graph)
    assert "trainer" in graph["transfer"] and "transfer" not in graph["listening_page"]
    found = cycles(graph)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_function_longer_than_a_screen():
    long = []
    for name, path in project_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_every_module_names_its_concern():
    for name, path in project_files().items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip().splitlines()[0].strip(), f"{name}: no docstring naming its concern"


def test_the_seeds_public_names_and_default_configs():
    import numpy as np
    import torch

    from audio_io import enhanced_visualize_and_play, high_quality_mel_to_audio, interpolate_latent_space  # noqa: F401
    from audio_resnet_encoder_wavenet_decoder import CVAE, Resnet1DBlock  # noqa: F401
    from prepare_data import AudioConfig, enhanced_audio_to_mel, load_audio, prepare_enhanced_dataset  # noqa: F401
    from SlicingDataLoading import DataLoad
    from trainer import (EfficientLoss, LightResBlock, MemoryEfficientDecoder, MemoryEfficientEncoder,  # noqa: F401
                         MemoryEfficientTrainer)
    assert callable(DataLoad.fetch_dataset)
    cfg = AudioConfig()
    t = np.arange(cfg.sample_rate, dtype=np.float32) / cfg.sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    mel = enhanced_audio_to_mel(tone)                       # the seed called both without a config
    assert mel.shape == (1, 1, cfg.n_mels, cfg.frames)
    natural = enhanced_audio_to_mel(tone, fit=False)
    audio = high_quality_mel_to_audio(natural[0])
    assert audio.shape == ((natural.shape[-1] - 1) * cfg.hop_length,) and torch.isfinite(audio).all()
    back = enhanced_audio_to_mel(audio, fit=False)[0, 0]
    assert int(back[:, 5:-5].mean(1).argmax()) == int(natural[0, 0, :, 5:-5].mean(1).argmax())   # the 440 Hz band
