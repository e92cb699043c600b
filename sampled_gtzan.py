"""Sampled GTZAN: real compositions played on sampled instruments (the sampled kind).

The second kind of the synthetic GTZAN (:mod:`synthetic_gtzan` writes both; this module
owns the sampled kind's content and rendering). Genre and content stay independent:

* content: an excerpt of a real piece from music21's corpus (Bach's four-part chorales and
  the fiddle tunes of Ryan's Mammoth Collection, interleaved in a fixed shuffled order,
  duple and quadruple meters only, one excerpt per melody): its melody from the first full
  bar (up to ``EXCERPT_BEATS`` quarter-note beats), its harmony per beat (read from the four
  voices of a chorale, fitted to the melody of a tune), its key; transposed to a key drawn
  from the content id. Content id k is the k-th excerpt of that order.
* genre: the oscillator kind's style parameters (:data:`synthetic_music.STYLES`: tempo and
  swing ranges, comping, bass and drum patterns, fills, humanisation, drive, levels, room,
  EQ, pumping) played by General MIDI programs chosen per role and genre
  (:data:`ARRANGEMENTS`) and a GM drum kit, with velocity dynamics and the synthesiser's
  reverb and chorus, rendered by FluidSynth from any SF2/SF3 SoundFont; then the oscillator
  kind's mix chain (amp drive, side-chain pumping, room, EQ, brightness and loudness drawn
  from one range for all genres).

Rendering is deterministic: the same content, genre, seed, SoundFont and FluidSynth build
give the same bytes (FluidSynth renders in float, without dither, from a freshly reset
synthesiser).

Public API
----------
sampled_available(soundfont=None) -> (bool, reason)   FluidSynth, pyfluidsynth, music21, a SoundFont
default_soundfont() -> Path | None     FluidR3 GM where installed, else pretty_midi's TimGM6mb
check_soundfont(path) -> Path          a readable RIFF 'sfbk' file, else InputError
soundfont_sha256(path) -> str
corpus_pieces(n, cache=None) -> list[dict]   the first n excerpts (content ids 0..n-1)
make_content(piece, content_id) -> synthetic_music.Content   the excerpt in its content key
render_clip(content_id, genre, ..., piece=None, soundfont=None) -> float32 [T]
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import synthetic_music as sg
from cli import InputError, one_line
from SlicingDataLoading import GTZAN_SR, atomic_write

CONTENT_VERSION = 1              # bump when the excerpt extraction changes (keys the contents cache)
RENDER_VERSION = 1               # bump when the arrangement or the rendering changes (keys the datasets)
CONTENTS = "sampled_contents.json"   # the excerpts of a sampled dataset, beside its manifest
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
EXCERPT_BEATS = 32               # quarter-note beats per excerpt at most (8 bars of 4/4)
MIN_BEATS = 16
METERS = ("4/4", "2/4", "2/2")   # the styles' patterns are in 4-beat bars of quarter notes
CORPUS_SEED = 28                 # the fixed shuffle of the candidate pieces


# ----------------------------------------------------------------------------- availability
def default_soundfont() -> Path | None:
    """FluidR3 GM (Debian's fluid-soundfont-gm) where installed, else the TimGM6mb SoundFont
    that pretty_midi ships, else None."""
    if FLUIDR3.is_file():
        return FLUIDR3
    spec = importlib.util.find_spec("pretty_midi")
    if spec is not None and spec.origin:
        tim = Path(spec.origin).parent / "TimGM6mb.sf2"
        if tim.is_file():
            return tim
    return None


def check_soundfont(path) -> Path:
    """``path`` resolved when it is a readable SoundFont (RIFF 'sfbk': SF2 or SF3).

    Raises
    ------
    InputError : missing, unreadable, or not a SoundFont (the message names the path).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"soundfont {str(path)!r}: no such file")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise InputError(f"soundfont {str(path)!r}: cannot be read ({exc.strerror})") from None
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise InputError(f"soundfont {str(path)!r}: not a SoundFont (no RIFF 'sfbk' header; expected an .sf2 or .sf3 "
                         f"file)")
    return path.resolve()


_SHA = {}


def soundfont_sha256(path) -> str:
    """sha256 of the file at ``path`` (memoised on path, size and mtime)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA[key] = h.hexdigest()
    return _SHA[key]


def sampled_available(soundfont=None) -> tuple[bool, str]:
    """(True, "") when the sampled kind can be rendered here, else (False, the reason):
    pyfluidsynth and the FluidSynth library load, music21 is installed, and ``soundfont``
    (default :func:`default_soundfont`) is a SoundFont. Callers fall back to the oscillator
    kind with one line giving the reason."""
    try:
        import fluidsynth  # noqa: F401  (raises ImportError or OSError without the library)
    except ImportError as exc:
        if getattr(exc, "name", None) == "fluidsynth":
            return False, "pyfluidsynth is missing (`make venv` installs it)"
        return False, (f"the FluidSynth library is missing (pyfluidsynth: {one_line(exc)}); `make fluidsynth` "
                       f"installs Debian's libfluidsynth3")
    except OSError as exc:
        return False, f"the FluidSynth library does not load ({one_line(exc)})"
    if importlib.util.find_spec("music21") is None:
        return False, "music21 is missing (`make venv` installs it)"
    if soundfont is None:
        soundfont = default_soundfont()
        if soundfont is None:
            return False, f"no SoundFont: neither {FLUIDR3} nor pretty_midi's TimGM6mb.sf2 is installed"
    try:
        check_soundfont(soundfont)
    except InputError as exc:
        return False, str(exc)
    return True, ""


def renderer_info() -> dict:
    """The versions that the sampled kind's bytes depend on besides the SoundFont (recorded
    beside a dataset's parameters)."""
    import fluidsynth
    import music21

    lib = ctypes.CDLL(fluidsynth.lib)
    lib.fluid_version_str.restype = ctypes.c_char_p
    return dict(music21=music21.__version__, fluidsynth=lib.fluid_version_str().decode(),
                pyfluidsynth=importlib.metadata.version("pyfluidsynth"))


def dataset_piece(root, content_id: int) -> dict:
    """The excerpt of ``content_id`` that the sampled dataset at ``root`` was rendered from."""
    pieces = json.loads((Path(root) / CONTENTS).read_text())
    if str(content_id) not in pieces:
        raise ValueError(f"content {content_id} is not in {Path(root) / CONTENTS}")
    return pieces[str(content_id)]


def dataset_soundfont(params: dict) -> Path:
    """The SoundFont a sampled dataset's ``params`` name, checked against their sha256."""
    font = check_soundfont(params["soundfont"])
    if soundfont_sha256(font) != params["soundfont_sha256"]:
        raise InputError(f"soundfont {str(font)!r} has changed since the dataset was written (sha256 "
                         f"{params['soundfont_sha256'][:12]}...): its renderings would not match the dataset")
    return font


# ----------------------------------------------------------------------------- content: the corpus
def _corpus_dir() -> Path:
    spec = importlib.util.find_spec("music21")
    return Path(spec.origin).parent / "corpus"


def candidates() -> list[str]:
    """Corpus paths (relative to music21's corpus folder) in the fixed order that content
    ids follow: the chorales and the fiddle tunes, each shuffled with ``CORPUS_SEED``, taken
    alternately."""
    root = _corpus_dir()
    groups = [sorted(p.relative_to(root).as_posix() for p in (root / sub).glob(pattern))
              for sub, pattern in (("bach", "bwv*.mxl"), ("ryansMammoth", "*.abc"))]
    rng = np.random.default_rng(CORPUS_SEED)
    groups = [[g[i] for i in rng.permutation(len(g))] for g in groups]
    out = []
    for i in range(max(map(len, groups))):
        out += [g[i] for g in groups if i < len(g)]
    return out


# A chord is a root pitch class and a quality of synthetic_music.CHORD_TONES.
_QUALITIES = ("maj", "min")
_DIATONIC = {  # (semitones above the tonic, quality) -> prior, per mode
    False: {(0, "maj"): .5, (5, "maj"): .4, (7, "maj"): .45, (9, "min"): .3, (2, "min"): .3, (4, "min"): .2},
    True: {(0, "min"): .5, (5, "min"): .4, (7, "maj"): .45, (7, "min"): .2, (8, "maj"): .3, (3, "maj"): .3,
           (10, "maj"): .3},
}


def fit_chord(weights: np.ndarray, bass_pc: int | None, tonic: int, minor: bool) -> tuple[int, str]:
    """The major or minor triad (dominant seventh on V when the seventh sounds) that best
    explains the pitch-class ``weights`` [12] of a span, with a prior for the key's diatonic
    chords and a bonus when the lowest voice is the root."""
    total = weights.sum() + 1e-9
    best, best_score = (tonic, "min" if minor else "maj"), -np.inf
    for quality in _QUALITIES:
        for root in range(12):
            tones = (root + np.array(sg.CHORD_TONES[quality])) % 12
            inside = weights[tones].sum()
            score = (inside - .7 * (total - inside)) / total
            score += _DIATONIC[minor].get(((root - tonic) % 12, quality), -.3)
            score += .3 * (bass_pc == root)
            if score > best_score + 1e-9:
                best, best_score = (root, quality), score
    root, quality = best
    if quality == "maj" and (root - tonic) % 12 == 7 and weights[(root + 10) % 12] > .15 * total:
        quality = "7"
    return root, quality


def _notes(part, start: float, length: float) -> list:
    """(onset beat, length, MIDI pitch) of ``part`` from ``start`` for ``length`` beats; ties
    joined, grace notes dropped, the top note of a chord."""
    out = []
    for n in part.stripTies().flatten().notes:
        on, dur = float(n.offset) - start, float(n.quarterLength)
        if dur <= 0 or on < 0 or on >= length:
            continue
        out.append((on, min(dur, length - on), max(p.midi for p in n.pitches)))
    return sorted(out)


def extract_piece(relpath: str) -> dict | None:
    """The excerpt of one corpus piece (melody, harmony per beat, key), or None when the
    piece does not fit (not four voices for a chorale, another meter, a meter change, too
    short, too few notes)."""
    from music21 import converter, meter, stream

    try:
        score = converter.parse(str(_corpus_dir() / relpath))
    except Exception:                          # a file music21 cannot read is skipped
        return None
    if not isinstance(score, stream.Score):
        return None
    parts = list(score.parts) or [score]
    chorale = relpath.startswith("bach/")
    if chorale and len(parts) != 4:
        return None
    signatures = {ts.ratioString for ts in parts[0].recurse().getElementsByClass(meter.TimeSignature)}
    if len(signatures) != 1 or next(iter(signatures)) not in METERS:
        return None
    bar = parts[0].recurse().getElementsByClass(meter.TimeSignature)[0].barDuration.quarterLength
    measures = list(parts[0].getElementsByClass(stream.Measure))
    full = [m for m in measures if m.duration.quarterLength == bar and not m.paddingLeft]
    start = float(full[0].offset) if full else 0.0
    melody = _notes(parts[0], start, 10 ** 6)
    if not melody:
        return None
    available = max(on + dur for on, dur, _ in melody)
    length = int(min(EXCERPT_BEATS, available // 4 * 4))
    melody = [(on, min(dur, length - on), p) for on, dur, p in melody if on < length]
    if length < MIN_BEATS or len(melody) < 8:
        return None
    melody = [(on, min(dur, nxt[0] - on) if nxt else dur, p)          # monophonic: a note ends by the next
              for (on, dur, p), nxt in zip(melody, melody[1:] + [None])]
    if max(p for *_, p in melody) - min(p for *_, p in melody) > 26:
        return None
    key = score.analyze("key")
    tonic, minor = key.tonic.pitchClass, key.mode == "minor"
    # pitch-class weight per beat (duration inside the beat; the lowest voice counts double)
    voices = [melody] + [_notes(p, start, length) for p in parts[1:]] if chorale else [melody]
    weights = np.zeros((length, 12))
    bass = [None] * length
    for v, notes in enumerate(voices):
        low = v == len(voices) - 1 and chorale
        for on, dur, pitch in notes:
            for b in range(int(on), min(int(np.ceil(on + dur)), length)):
                overlap = min(on + dur, b + 1) - max(on, b)
                weights[b, pitch % 12] += overlap * (2 if low else 1)
                if low and on <= b:
                    bass[b] = pitch % 12
    if chorale:
        harmony = [fit_chord(weights[b], bass[b], tonic, minor) for b in range(length)]
    else:  # a tune's melody alone: one chord per half bar
        harmony = [fit_chord(weights[b:b + 2].sum(0), None, tonic, minor) for b in range(0, length, 2)]
        harmony = [c for c in harmony for _ in range(2)]
    pitches = np.array([p for *_, p in melody])
    title = (score.metadata.title if score.metadata else None) or Path(relpath).stem
    if chorale:  # music21's chorales carry their file name as the title
        title = f"J. S. Bach, chorale BWV {Path(relpath).stem.removeprefix('bwv')}"
    return dict(source=relpath, title=str(title),
                meter=next(iter(signatures)), start_beat=start, key=f"{key.tonic.name} {key.mode}", tonic=tonic,
                minor=minor, length_beats=length,
                melody=[[round(on, 6), round(dur, 6), int(p)] for on, dur, p in melody],
                harmony=[[int(r), q] for r, q in harmony],
                fingerprint=" ".join(str(int(d)) for d in np.diff(pitches[:13])))


def corpus_pieces(n: int, cache=None) -> list[dict]:
    """The first ``n`` excerpts in :func:`candidates` order, one per melody (a chorale tune
    harmonised twice counts once): content ids 0..n-1.

    The excerpts found so far are kept for the process. ``cache``: a JSON file that keeps
    them (and how far the candidate list was read) across processes, so a second call parses
    nothing; rewritten when it grows, and ignored when written by another
    ``CONTENT_VERSION`` or music21."""
    import music21

    stamp = dict(version=CONTENT_VERSION, music21=music21.__version__)
    state = _MEMO.get(music21.__version__, dict(stamp, scanned=0, pieces=[]))
    if cache is not None and len(state["pieces"]) < n:
        try:
            loaded = json.loads(Path(cache).read_text())
            if {k: loaded.get(k) for k in stamp} == stamp and len(loaded["pieces"]) > len(state["pieces"]):
                state = loaded
        except (OSError, ValueError):
            pass
    pieces, scanned = list(state["pieces"]), state["scanned"]
    if len(pieces) < n:
        order = candidates()
        seen = {p["fingerprint"] for p in pieces}
        while len(pieces) < n and scanned < len(order):
            piece = extract_piece(order[scanned])
            scanned += 1
            if piece is not None and piece["fingerprint"] not in seen:
                seen.add(piece["fingerprint"])
                pieces.append(piece)
        if len(pieces) < n:
            raise ValueError(f"the corpus holds {len(pieces)} usable excerpts; {n} asked for")
        state = dict(stamp, scanned=scanned, pieces=pieces)
        if cache is not None:
            text = json.dumps(state)
            atomic_write(cache, lambda f: f.write(text), mode="w")
    _MEMO[music21.__version__] = state
    return pieces[:n]


_MEMO: dict = {}   # this process's excerpts so far, by music21 version


def content_transposition(piece: dict, content_id: int) -> int:
    """Semitones that move ``piece`` to its content key (drawn from the content id) and its
    melody to a median near A4."""
    tonic = int(np.random.default_rng([3, content_id]).integers(12))
    shift = (tonic - piece["tonic"] + 6) % 12 - 6
    median = float(np.median([p for *_, p in piece["melody"]])) + shift
    return int(shift + 12 * np.round((70 - median) / 12))


def make_content(piece: dict, content_id: int) -> sg.Content:
    """The excerpt as a :class:`synthetic_music.Content` in its content key: the melody, and a
    chord per half bar (the harmony of the half bar's first beat)."""
    shift = content_transposition(piece, content_id)
    chords = tuple(((root + shift) % 12, sg.CHORD_TONES[quality]) for root, quality in piece["harmony"][::2])
    melody = np.array([(on, dur, p + shift) for on, dur, p in piece["melody"]], float)
    return sg.Content((piece["tonic"] + shift) % 12, bool(piece["minor"]), chords, 2, melody)


# ----------------------------------------------------------------------------- genre: arrangement
@dataclass(frozen=True)
class Arrangement:
    """General MIDI programs (0-based) per role, a few choices each; drum kits (bank 128);
    per-role velocity (share of 127), reverb and chorus sends (share of 127)."""
    lead: tuple
    chords: tuple
    bass: tuple
    kits: tuple = (0,)
    velocity: tuple = (.7, .9)
    reverb_send: tuple = (.2, .4)
    chorus_send: tuple = (0, .1)
    drum_notes: tuple = ()            # (voice, GM note) overrides of DRUM_NOTES


ARRANGEMENTS = {  # GM programs: 0 grand piano, 1 bright piano, 4 electric piano, 8 celesta, 10 music box,
    # 11 vibraphone, 16 drawbar organ, 17 percussive organ, 22 harmonica, 24 nylon guitar, 25 steel
    # guitar, 26 jazz guitar, 27 clean guitar, 28 muted guitar, 29 overdriven guitar, 30 distortion
    # guitar, 32 acoustic (upright) bass, 33 finger bass, 34 pick bass, 36 slap bass, 38/39 synth bass,
    # 40 violin, 42 cello, 43 contrabass, 46 harp, 48/49 strings, 50 synth strings, 54 synth voice,
    # 56 trumpet, 61 brass section, 65 alto sax, 66 tenor sax, 68 oboe, 71 clarinet, 73 flute,
    # 80 square lead, 81 saw lead, 87 bass + lead, 88 new-age pad, 89 warm pad, 90 polysynth, 105 banjo,
    # 110 fiddle. Kits (bank 128): 0 standard, 8 room, 16 power, 24 electronic, 25 TR-808, 32 jazz, 40 brush.
    "blues": Arrangement(lead=(22, 29, 26), chords=(16, 0, 17), bass=(33, 32), kits=(0, 8), velocity=(.7, .95)),
    "classical": Arrangement(lead=(40, 73, 68, 71), chords=(48, 49, 46), bass=(42, 43), kits=(), velocity=(.5, .8),
                             reverb_send=(.5, .8), chorus_send=(0, .05)),
    "country": Arrangement(lead=(110, 105, 25), chords=(25, 24), bass=(32, 33), kits=(0, 40), velocity=(.65, .85),
                           drum_notes=(("brush", 69),)),          # the standard kit's brush part: cabasa
    "disco": Arrangement(lead=(48, 50, 61, 81), chords=(27, 28, 48), bass=(38, 36, 33), kits=(0, 24),
                         velocity=(.8, 1.0), chorus_send=(.2, .5)),
    "hiphop": Arrangement(lead=(4, 10, 11, 73), chords=(4, 89, 88), bass=(38, 39, 87), kits=(25, 24),
                          velocity=(.7, .9), reverb_send=(.05, .2), chorus_send=(.1, .3)),
    "jazz": Arrangement(lead=(66, 65, 56, 11), chords=(0, 4, 26), bass=(32,), kits=(40, 32), velocity=(.55, .8),
                        drum_notes=(("hat", 44),)),               # the hi-hat on 2 and 4 is the pedal
    "metal": Arrangement(lead=(30,), chords=(30, 29), bass=(34, 33), kits=(16, 0), velocity=(.9, 1.0),
                         reverb_send=(.05, .2)),
    "pop": Arrangement(lead=(80, 1, 8, 54), chords=(0, 89, 90), bass=(38, 33), kits=(0, 24), velocity=(.75, .9),
                       reverb_send=(.3, .5), chorus_send=(.2, .4)),
    "reggae": Arrangement(lead=(16, 22, 27), chords=(16, 17, 27), bass=(33, 34), kits=(0, 8), velocity=(.65, .85)),
    "rock": Arrangement(lead=(29, 27), chords=(29, 25, 27), bass=(34,), kits=(0, 8, 16), velocity=(.8, 1.0)),
}
DRUM_NOTES = {"kick": 36, "snare": 38, "clap": 39, "hat": 42, "open_hat": 46, "ride": 51, "crash": 49,
              "tom": 45, "rim": 37, "brush": 40, "shaker": 70}
FILL_TOMS = {14: 48, 15: 45}     # the fill's high and low tom
PARTS = ("lead", "chords", "bass", "drums")   # MIDI channels 0..3, one audio group each
DRUM_CHANNEL = PARTS.index("drums")


def note_events(events: list, grid: sg.BeatGrid, n: int, sr: int, rng, humanize_ms: float,
                velocity: float) -> list:
    """(on sample, off sample, MIDI key, MIDI velocity) of oscillator-kind events (onset beat,
    length in beats, pitch, velocity, delay s) at their swung, humanised times."""
    out = []
    for beat, length, pitch, vel, delay in events:
        t0 = float(grid.seconds(beat)) + delay + rng.normal(0, humanize_ms / 1000)
        on = int(max(t0, 0) * sr)
        if on >= n:
            continue
        off = on + max(int(float(grid.seconds(beat + length) - grid.seconds(beat)) * sr), 1)
        out.append((on, off, int(pitch), int(np.clip(round(127 * velocity * vel), 1, 127))))
    return out


# ----------------------------------------------------------------------------- FluidSynth
class Synth:
    """FluidSynth with a SoundFont, rendering MIDI channel c (0..3) into its own stereo audio
    group with its own reverb and chorus. Every render starts a fresh synthesiser (a reset
    one keeps effect state, and its output would depend on the clip rendered before); a
    holder instance per process keeps the SoundFont's samples in FluidSynth's sample cache,
    so loading it again is quick."""

    _all: dict = {}

    def __init__(self, soundfont: Path, sr: int):
        import fluidsynth

        self.fluidsynth, self.soundfont, self.sr = fluidsynth, str(soundfont), int(sr)
        lib = ctypes.CDLL(fluidsynth.lib)
        lib.fluid_set_log_function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.fluid_set_log_function(2, None, None)        # no warnings on stderr (FLUID_WARN)
        self._process = lib.fluid_synth_process
        self._process.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        self._process.restype = ctypes.c_int
        self._set_channel_type = lib.fluid_synth_set_channel_type
        self._set_channel_type.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self.holder, _ = self._new()

    def _new(self):
        groups = len(PARTS)
        synth = self.fluidsynth.Synth(gain=0.5, samplerate=float(self.sr), channels=16, **{
            "synth.audio-channels": groups, "synth.audio-groups": groups, "synth.effects-groups": groups,
            "synth.cpu-cores": 1, "synth.polyphony": 512})
        sfid = synth.sfload(self.soundfont)
        if sfid < 0:
            synth.delete()
            raise InputError(f"soundfont {self.soundfont!r}: FluidSynth cannot load it")
        return synth, sfid

    @classmethod
    def get(cls, soundfont: Path, sr: int) -> "Synth":
        """This process's renderer for ``soundfont`` at ``sr``."""
        key = (os.getpid(), str(soundfont), int(sr))
        if key not in cls._all:
            cls._all[key] = cls(soundfont, sr)
        return cls._all[key]

    def render(self, notes: dict, programs: dict, n: int, sends: dict, reverb: tuple, chorus: tuple) -> np.ndarray:
        """Stems of the parts, mono float64 [len(PARTS), n].

        notes: part -> [(on sample, off sample or None, key, velocity)]; programs: part ->
        GM program (the drum kit for "drums"); sends: part -> (reverb, chorus) CC values;
        reverb: (room size, damping, width, level); chorus: (voices, level, speed Hz, depth ms).
        """
        s, sfid = self._new()
        try:
            return self._render(s, sfid, notes, programs, n, sends, reverb, chorus)
        finally:
            s.delete()

    def _render(self, s, sfid, notes, programs, n, sends, reverb, chorus) -> np.ndarray:
        self._set_channel_type(s.synth, DRUM_CHANNEL, 1)       # CHANNEL_TYPE_DRUM
        for c, part in enumerate(PARTS):
            if part in programs:
                bank = 128 if part == "drums" else 0
                if s.program_select(c, sfid, bank, programs[part]) < 0:   # not in this SoundFont:
                    s.program_select(c, sfid, bank, 0)                     # its first program / kit
                s.cc(c, 91, sends[part][0])
                s.cc(c, 93, sends[part][1])
        s.set_reverb(*reverb)
        s.set_chorus(*chorus)
        events = []   # (sample, order, channel, key, velocity); note-offs before note-ons at one time
        for c, part in enumerate(PARTS):
            by_key = {}
            for on, off, key, vel in sorted(notes.get(part, [])):
                by_key.setdefault(key, []).append((on, off))
                events.append((on, 1, c, key, vel))
            for key, spans in by_key.items():   # a repeated key ends its previous note first
                for (on, off), nxt in zip(spans, spans[1:] + [None]):
                    if off is not None:
                        events.append((min(off, nxt[0]) if nxt else off, 0, c, key, 0))
        events.sort()
        stereo = np.zeros((2 * len(PARTS), n), np.float32)     # L, R per part
        base, stride = stereo.ctypes.data, stereo.strides[0]
        out = (ctypes.c_void_p * len(stereo))()
        fx = (ctypes.c_void_p * (4 * len(PARTS)))()           # per group: reverb L R, chorus L R

        def run(pos: int, length: int) -> None:
            for i in range(len(stereo)):
                out[i] = base + i * stride + 4 * pos
            for g in range(len(PARTS)):
                for k in range(4):
                    fx[4 * g + k] = out[2 * g + k % 2]          # effects mixed into the group's stems
            if self._process(s.synth, length, len(fx), fx, len(out), out) != 0:
                raise RuntimeError("fluid_synth_process failed")

        pos = 0
        for sample, is_on, c, key, vel in events:
            sample = min(sample, n)
            while pos < sample:
                step = min(sample - pos, 8192)
                run(pos, step)
                pos += step
            if sample >= n:
                break
            if is_on:
                s.noteon(c, key, vel)
            else:
                s.noteoff(c, key)
        while pos < n:
            step = min(n - pos, 8192)
            run(pos, step)
            pos += step
        return stereo.reshape(len(PARTS), 2, n).astype(np.float64).mean(1)


# ----------------------------------------------------------------------------- rendering
def render_clip(content_id: int, genre: str, *, sr: int = GTZAN_SR, duration: float = 30.0, seed: int = 0,
                variant: int = 0, tempo: float | None = None, swing: float | None = None, piece: dict | None = None,
                soundfont=None) -> np.ndarray:
    """Render one clip of the sampled kind: ``content_id``'s excerpt in ``genre``.

    Parameters
    ----------
    content_id : int >= 0; its excerpt is ``piece`` (default: ``corpus_pieces(content_id + 1)[-1]``)
    genre : one of GENRES
    sr, duration : sample rate (Hz) and length (s)
    seed, variant : select the genre draw (tempo, programs, kit, patterns, mix, ...)
    tempo, swing : replace the drawn tempo (BPM) and swing ratio, e.g. another clip's
        :func:`synthetic_music.clip_timing` (the same draws as the oscillator kind)
    soundfont : SF2/SF3 path (default :func:`default_soundfont`)

    Returns
    -------
    np.ndarray float32 [round(sr * duration)], peaks <= synthetic_music.PEAK
    """
    sg._check_clip_args(content_id, genre, sr, duration, seed, variant)
    soundfont = check_soundfont(soundfont if soundfont is not None else default_soundfont() or FLUIDR3)
    piece = corpus_pieces(content_id + 1)[-1] if piece is None else piece
    style, arr = sg.STYLES[genre], ARRANGEMENTS[genre]
    content = make_content(piece, content_id)
    rng = sg._clip_rng(content_id, genre, seed, variant)
    n = round(sr * duration)
    drawn_tempo, drawn_swing = rng.uniform(*style.tempo), rng.uniform(*style.swing)
    grid = sg.BeatGrid(drawn_tempo if tempo is None else float(tempo), drawn_swing if swing is None else float(swing),
                       style.swing_unit)
    n_beats = duration * grid.tempo / 60 + 1
    events = {
        "lead": sg.melody_events(content, n_beats, rng, rng.uniform(*style.legato)),
        "chords": sg.comp_events(rng.choice(style.comp), content, n_beats, rng),
        "bass": sg.bass_events(rng.choice(style.bass), content, n_beats, rng),
    }
    programs = {part: int(rng.choice(getattr(arr, part))) for part in events}
    notes = {part: note_events(ev, grid, n, sr, rng, style.humanize_ms, rng.uniform(*arr.velocity))
             for part, ev in events.items()}
    if style.drums:
        pattern, fill_every, voices = sg.drum_plan(style, rng)
        programs["drums"] = int(rng.choice(arr.kits))
        drum_notes = {**DRUM_NOTES, **dict(arr.drum_notes)}
        levels = {v: 10 ** (rng.uniform(-3, 0) / 20) for v in voices}
        notes["drums"] = [  # no note-offs: a hit rings out (the kit's exclusive classes choke the hi-hat)
            (int(max(t0, 0) * sr), None, FILL_TOMS.get(step, 45) if voice == "tom" else drum_notes[voice],
             int(np.clip(round(127 * vel * levels[voice] * accent), 1, 127)))
            for voice, step, t0, vel, accent in sg.drum_hits(style, pattern, fill_every, grid, n, sr, rng)]
    sends = {part: (int(127 * rng.uniform(*arr.reverb_send)), int(127 * rng.uniform(*arr.chorus_send)))
             for part in PARTS}
    rt60 = rng.uniform(*style.rt60)
    reverb = (float(np.clip(rt60 / 3.2, .1, .95)), float(rng.uniform(.2, .6)), float(rng.uniform(.5, 1.0)),
              float(rng.uniform(.6, .9)))
    chorus = (3, float(rng.uniform(1.0, 2.0)), float(rng.uniform(.3, .8)), float(rng.uniform(4, 10)), 0)
    stems = Synth.get(soundfont, sr).render(notes, programs, n, sends, reverb, chorus)

    mix = np.zeros(n)
    for i, part in enumerate(("lead", "chords", "bass")):
        bus = sg.amp(stems[i], sr, rng, rng.uniform(*style.drive[part]) if part in style.drive else 0.0)
        mix += bus / sg.rms(bus) * 10 ** (rng.uniform(*style.levels.get(part, sg.PART_LEVELS[part])) / 20)
    if style.pump[1] > 0:
        mix *= sg.side_chain(grid, n, sr, rng.uniform(*style.pump))
    if style.drums:
        drums = stems[DRUM_CHANNEL]
        mix += drums / sg.rms(drums) * 10 ** (rng.uniform(*style.levels.get("drums", sg.PART_LEVELS["drums"])) / 20)
    return sg.master(mix, style, sr, rng).astype(np.float32)
