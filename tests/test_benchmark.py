"""benchmark.py's transfer rows at a small scale: the files are made, transferred end to end
and rendered into BENCHMARKS.md's section (no timing asserts)."""
import benchmark


def test_transfer_rows_run_and_render(tmp_path):
    rows = benchmark.bench_transfer(preset="tiny", seconds=2.0, long_minutes=0.1, repeats=1, long_repeats=1)
    assert [r["file"] for r in rows] == ["2 s mono WAV, 22050 Hz", "2 s stereo WAV, 22050 Hz",
                                         "0.1 min stereo Ogg/Opus, 48 kHz"]
    assert [round(r["duration_s"], 2) for r in rows] == [2.0, 2.0, 6.0]
    for r in rows:
        assert r["seconds"] >= r["transfer_s"] > 0 and r["rtf"] == r["seconds"] / r["duration_s"]
    results = {"machine": benchmark.machine(), "date": "today", "transfer": rows}
    section = benchmark.render_sections(results)["transfer"]
    assert section.startswith("## Transferring files end to end") and section.count("\n| ") == 4   # header + 3 rows
    old = "# Benchmarks\n\n<!-- section:decode -->\nkept\n<!-- /section -->\n<!-- extra -->\nnotes\n"
    merged = benchmark.merge_markdown(old, {"transfer": section})
    assert merged.index("<!-- section:decode -->") < merged.index("<!-- section:transfer -->")
    assert "kept" in merged and merged.endswith("notes\n")
