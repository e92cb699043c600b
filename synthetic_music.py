"""The synthetic GTZAN's music: content, genre styles, instruments, drums, the mix chain, and one clip of the oscillator kind.

Genre and content are independent factors, so a genre transfer has a ground truth:

* content (seeded by the content id only): key, chord progression, melody and its
  rhythm, all in beats;
* genre (seeded by seed, genre, content id and variant): tempo (ranges overlap), swing,
  instruments (wavetable harmonic profiles, FM, Karplus-Strong pluck, filtered saw,
  organ, strings), comping pattern, bass style, drum kit and 16-step pattern with fills
  and humanisation, side-chain pumping, distortion, room, EQ, mix levels. Every genre
  parameter is drawn per clip from a range (jitter). The one link from content to genre
  parts is musical: pitched drums (kick, toms) are tuned to the song's key.

Each clip's spectral centroid and RMS are set to targets drawn from one range shared by all
genres (then peaks are limited), so neither loudness nor brightness alone tells the genres
apart. The oscillator kind plays everything with this module's instruments
(:func:`render_clip`); the sampled kind (:mod:`sampled_gtzan`) plays the same styles, parts
and mix chain on SoundFont instruments. :mod:`synthetic_gtzan` writes the datasets.

Public API
----------
make_content(content_id)              the ground-truth content (key, chords, melody in beats)
clip_timing(content_id, genre, ...)   the tempo and swing a clip draws
render_clip(content_id, genre, ...)   one clip of the oscillator kind, float32 [T]
STYLES, BeatGrid, drum_plan, drum_hits, master, ...   the parts the sampled kind shares
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, signal

from SlicingDataLoading import GENRES, GTZAN_SR

RMS_DB = (-25.0, -16.0)          # clip loudness range, shared by all genres
CENTROID_HZ = (1400.0, 2800.0)   # clip spectral-centroid range at 22.05 kHz, shared by all genres
PEAK = 0.89                      # limiter ceiling (-1 dBFS)

# ----------------------------------------------------------------------------- content
SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 10)}
CHORD_TONES = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10),
               "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10)}
PROGRESSIONS = {  # (semitones above the tonic, quality) per chord; False = major keys
    False: (((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),          # I-V-vi-IV
            ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),          # I-vi-IV-V
            ((2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")),           # ii-V-I
            ((0, "maj"), (5, "maj"), (0, "maj"), (7, "maj")),          # I-IV-I-V
            ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj")),          # vi-IV-I-V
            ((0, "7"),) * 4 + ((5, "7"),) * 2 + ((0, "7"),) * 2
            + ((7, "7"), (5, "7"), (0, "7"), (7, "7"))),               # 12-bar blues
    True: (((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),          # i-VI-III-VII
           ((0, "min"), (5, "min"), (7, "min"), (0, "min")),           # i-iv-v-i
           ((0, "min"), (10, "maj"), (8, "maj"), (10, "maj")),         # i-VII-VI-VII
           ((0, "m7"), (5, "m7"), (10, "7"), (3, "maj7")),             # i-iv-VII-III
           ((0, "min"), (5, "min"), (0, "min"), (7, "7"))),            # i-iv-i-V
}
RHYTHM_CELLS = ((0, 1, 2, 3), (0, 1.5, 2, 3), (0, .5, 1, 2, 2.5, 3), (0, 2), (0, 1, 1.5, 2.5, 3),
                (0, .5, 1.5, 2, 3, 3.5), (0, 1, 2), (.5, 1, 2, 3), (0, 1.5, 3), (0, .5, 1, 1.5, 2, 3))
MELODY_RANGE = np.arange(60, 82)  # MIDI C4..A5


@dataclass(frozen=True)
class Content:
    """The genre-free part of a song; every time is in beats."""
    tonic: int                    # pitch class 0..11
    minor: bool
    chords: tuple                 # ((root pitch class, intervals), ...)
    beats_per_chord: int
    melody: np.ndarray            # (N, 3): onset beat, length in beats, MIDI pitch

    @property
    def length_beats(self) -> float:
        return len(self.chords) * self.beats_per_chord

    def chord_at(self, beat: float) -> tuple:
        return self.chords[int(beat % self.length_beats // self.beats_per_chord)]


def make_content(content_id: int) -> Content:
    """Key, progression, melody and its rhythm of one content id (seeded by the id only)."""
    rng = np.random.default_rng([1, content_id])
    tonic, minor = int(rng.integers(12)), bool(rng.random() < 0.5)
    options = PROGRESSIONS[minor]
    prog = options[rng.integers(len(options))]
    chords = tuple(((tonic + step) % 12, CHORD_TONES[quality]) for step, quality in prog)
    beats_per_chord = 4 if len(prog) > 4 else int(rng.choice([2, 4]))
    scale = (tonic + np.array(SCALES[minor])) % 12
    motif = rng.choice(len(RHYTHM_CELLS), 2, replace=False)
    notes, pitch = [], 69.0
    for bar in range(len(chords) * beats_per_chord // 4):
        cell = RHYTHM_CELLS[motif[bar % 2] if rng.random() < 0.8 else rng.integers(len(RHYTHM_CELLS))]
        for onset, end in zip(cell, cell[1:] + (4,)):
            beat = 4 * bar + onset
            root, tones = chords[int(beat // beats_per_chord)]
            pcs = (root + np.array(tones)) % 12 if onset % 1 == 0 else scale   # chord tones on beats
            candidates = MELODY_RANGE[np.isin(MELODY_RANGE % 12, pcs)]
            target = pitch + rng.normal(0, 3) + 0.2 * (70 - pitch)
            pitch = float(candidates[np.argmin(np.abs(candidates - target))])
            notes.append((beat, end - onset, pitch))
    return Content(tonic, minor, chords, beats_per_chord, np.array(notes))


# ----------------------------------------------------------------------------- instruments
# kind, parameters; a (lo, hi) pair is drawn uniformly per clip (the genre's jitter)
INSTRUMENTS = {
    "organ": ("table", dict(drawbars=(1, .8, .6, .5, 0, .3, 0, .25), attack=.01, decay=.2, sustain=.9,
                            release=.06, vib_rate=(5.5, 7), vib_cents=(4, 12))),
    "piano": ("table", dict(slope=(1.3, 1.7), attack=.004, decay=(.5, 1.0), sustain=0, release=.15,
                            bright_time=(.08, .2))),
    "strings": ("table", dict(slope=(1.0, 1.3), attack=(.12, .3), sustain=1, release=(.2, .4), voices=3,
                              detune=(6, 14), vib_rate=(4.5, 6), vib_cents=(6, 14), lowpass=(3500, 5500))),
    "violin": ("table", dict(slope=(0.9, 1.2), attack=(.05, .1), sustain=1, release=.15,
                             vib_rate=(5, 6.5), vib_cents=(15, 30), lowpass=(5000, 7000))),
    "cello": ("table", dict(slope=(1.1, 1.4), attack=(.1, .2), sustain=1, release=.3, vib_rate=(4.5, 5.5),
                            vib_cents=(8, 18), lowpass=(2500, 4000))),
    "flute": ("table", dict(slope=(2.6, 3.4), attack=(.04, .08), sustain=1, release=.1,
                            vib_rate=(4.5, 5.5), vib_cents=(10, 20), breath=(.03, .06))),
    "harmonica": ("table", dict(slope=(1.0, 1.3), even=(.2, .4), attack=.03, sustain=1, release=.08,
                                vib_rate=(6, 8), vib_cents=(15, 35), lowpass=(3000, 4500))),
    "sax": ("table", dict(slope=(1.1, 1.4), even=(.5, .7), attack=(.03, .06), sustain=.9, decay=.3,
                          release=.1, vib_rate=(5, 6), vib_cents=(10, 25), lowpass=(2500, 4000))),
    "synth_lead": ("table", dict(slope=1.0, attack=.01, decay=.3, sustain=.7, release=.1, voices=2,
                                 detune=(8, 18), lowpass=(2500, 5000))),
    "synth_pad": ("table", dict(slope=(1.0, 1.5), attack=(.2, .4), sustain=1, release=(.3, .6), voices=3,
                                detune=(10, 20), lowpass=(1200, 2500))),
    "epiano": ("fm", dict(ratio=1.0, index=(1.5, 3.0), index_decay=(.15, .4), index_floor=.15,
                          t60=(1.5, 3.0), release=.2)),
    "vibes": ("fm", dict(ratio=4.0, index=(1.0, 2.0), index_decay=(.05, .15), index_floor=.05,
                         t60=(1.5, 2.5), release=.3, trem_rate=(4, 6))),
    "bell": ("fm", dict(ratio=3.5, index=(1.5, 2.5), index_decay=(.1, .3), index_floor=.1,
                        t60=(1.0, 2.0), release=.2)),
    "guitar": ("pluck", dict(brightness=(.55, .8), t60=(1.2, 2.5), release=.05)),
    "guitar_dark": ("pluck", dict(brightness=(.3, .5), t60=(1.0, 2.0), release=.05)),
    "upright": ("pluck", dict(brightness=(.2, .35), t60=(.6, 1.0), release=.05)),
    "bass_finger": ("table", dict(slope=(2.0, 2.6), attack=.005, decay=(.6, 1.2), sustain=.25,
                                  release=.06)),
    "bass_pick": ("table", dict(slope=(1.4, 1.8), attack=.003, decay=(.3, .6), sustain=.3, release=.04)),
    "bass_synth": ("table", dict(slope=1.0, attack=.005, decay=.25, sustain=.5, release=.05,
                                 lowpass=(500, 1100))),
    "bass_808": ("sub", dict(glide=(.6, 1.2), drive=(1.5, 3.0), t60=(.8, 1.6), release=.08)),
}


def draw(spec: dict, rng: np.random.Generator) -> dict:
    """Draw every (lo, hi) pair of ``spec`` uniformly; other values pass through."""
    return {k: float(rng.uniform(*v)) if isinstance(v, tuple) and len(v) == 2 else v
            for k, v in spec.items()}


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def wavetable(phase: np.ndarray, amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Band-limited periodic wave at ``phase`` (in cycles) with harmonic amplitudes ``amps``."""
    size = 2048
    spectrum = np.zeros(size // 2 + 1, complex)
    spectrum[1:len(amps) + 1] = amps * np.exp(1j * phases[:len(amps)])
    table = np.fft.irfft(spectrum, size) * size / 2
    table = np.append(table, table[0])
    pos = (phase % 1.0) * size
    i = pos.astype(np.int64)
    return table[i] + (pos - i) * (table[i + 1] - table[i])


def envelope(n: int, sr: int, p: dict) -> np.ndarray:
    """Attack ramp, then exponential decay towards the sustain level. [n]"""
    t = np.arange(n) / sr
    attack = max(p.get("attack", .005), 1 / sr)
    decay = p["t60"] / 6.9 if "t60" in p else p.get("decay", .2)
    level = p.get("sustain", 1.0) + (1 - p.get("sustain", 1.0)) * np.exp(-np.maximum(t - attack, 0) / decay)
    return np.minimum(t / attack, 1.0) * level


def tone_table(f0, n, sr, p, rng):
    """Additive (wavetable) tone: harmonic law k^-slope or organ drawbars, vibrato, detuned voices."""
    k = np.arange(1, 65)
    if "drawbars" in p:
        amps = np.zeros(64)
        amps[:len(p["drawbars"])] = p["drawbars"]
    else:
        amps = k ** -p["slope"] * np.where(k % 2 == 0, p.get("even", 1.0), 1.0)
    amps = amps * (k * f0 < 0.45 * sr)
    phases = rng.uniform(0, 2 * np.pi, 64)
    t = np.arange(n) / sr
    vibrato = 2 ** (p.get("vib_cents", 0) / 1200 * np.sin(2 * np.pi * p.get("vib_rate", 5) * t
                                                            + rng.uniform(0, 2 * np.pi)))
    voices = int(p.get("voices", 1))
    y = np.zeros(n)
    for v in range(voices):
        cents = p.get("detune", 0) * (v - (voices - 1) / 2)
        phase = np.cumsum(f0 * 2 ** (cents / 1200) * vibrato) / sr + rng.random()
        y += wavetable(phase, amps, phases)
    if "bright_time" in p:  # upper harmonics die first (piano)
        dark = wavetable(np.arange(n) * f0 / sr, amps * k ** -1.5, phases)
        fade = np.exp(-t / p["bright_time"])
        y = fade * y + (1 - fade) * dark
    if "breath" in p:
        y += p["breath"] * rng.standard_normal(n) * np.abs(y).max()
    return y / voices * envelope(n, sr, p)


def tone_fm(f0, n, sr, p, rng):
    """Two-operator FM (electric piano, vibes, bells): index decays towards a floor."""
    t = np.arange(n) / sr
    index = p["index"] * (p["index_floor"] + (1 - p["index_floor"]) * np.exp(-t / p["index_decay"]))
    y = np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * f0 * p["ratio"] * t))
    if "trem_rate" in p:
        y *= 1 + 0.3 * np.sin(2 * np.pi * p["trem_rate"] * t)
    return y * envelope(n, sr, p)


def tone_sub(f0, n, sr, p, rng):
    """808-style sub bass: sine with a downward pitch glide, saturated, long decay."""
    t = np.arange(n) / sr
    phase = np.cumsum(f0 * (1 + p["glide"] * np.exp(-t / .03))) / sr
    return np.tanh(p["drive"] * np.sin(2 * np.pi * phase)) * envelope(n, sr, p)


def tone_pluck(f0, n, sr, p, rng):
    """Karplus-Strong string: a noise burst in a damped feedback delay line (fractional length).

    y[i] = x[i] + c0 y[i-N] + c1 y[i-N-1] + c2 y[i-N-2], the taps being a two-point average
    (the string's damping) combined with linear interpolation for the fractional delay.
    """
    period = sr / f0 - 0.5
    N, frac = int(period), period - int(period)
    n = min(n, int(1.2 * p["t60"] * sr))
    gain = 10 ** (-3 * (period + 0.5) / (p["t60"] * sr))
    taps = gain * 0.5 * np.array([1 - frac, 1.0, frac])
    burst = signal.lfilter([p["brightness"]], [1, p["brightness"] - 1], rng.uniform(-1, 1, N))
    if N < 64:  # short delay: one IIR filter call is cheapest
        a = np.zeros(N + 3)
        a[0], a[N:] = 1.0, -taps
        x = np.zeros(n)
        x[:N] = burst
        return signal.lfilter([1.0], a, x)
    y = np.zeros(n + 2)  # two leading zeros stand for y[-2], y[-1]
    y[2:2 + N] = burst
    for s in range(N, n, N):  # one period at a time: each block depends only on the previous
        e = min(s + N, n)
        y[2 + s:2 + e] = taps[0] * y[2 + s - N:2 + e - N] + taps[1] * y[1 + s - N:1 + e - N] \
            + taps[2] * y[s - N:e - N]
    return y[2:]


TONES = {"table": tone_table, "fm": tone_fm, "sub": tone_sub, "pluck": tone_pluck}


class Instrument:
    """One instrument of one clip: renders each pitch once (held), then cuts notes from it."""

    def __init__(self, name: str, sr: int, rng: np.random.Generator, max_seconds: float):
        self.name, (self.kind, spec) = name, INSTRUMENTS[name]
        self.p, self.sr = draw(spec, rng), sr
        self.rng = np.random.default_rng(rng.integers(2 ** 63))
        self.max_n = int(max_seconds * sr)
        self.tones = {}

    def note(self, midi: float, seconds: float) -> np.ndarray:
        """The pitch held for ``seconds`` then released. [n + release]"""
        if midi not in self.tones:
            self.tones[midi] = TONES[self.kind](midi_hz(midi), self.max_n, self.sr, self.p, self.rng)
        tone = self.tones[midi]
        n, release = int(seconds * self.sr), int(self.p["release"] * self.sr)
        y = tone[:n + release].copy()
        y[n:] *= np.linspace(1, 0, len(y) - n) if len(y) > n else 1
        return y


# ----------------------------------------------------------------------------- drums
DRUMS = {  # f0/sweep: pitched body; noise: band-passed burst; metal: inharmonic partials (cymbals)
    "kick": dict(length=.6, f0=(45, 60), sweep=(110, 170), body=(.15, .35), noise=(.05, .2),
                 band_lo=1000, band_hi=6000, noise_decay=.004),
    "snare": dict(length=.35, f0=(170, 230), sweep=(230, 300), body=(.04, .08), noise=(.7, 1.0),
                  band_lo=1500, band_hi=8000, noise_decay=(.08, .16)),
    "clap": dict(length=.3, noise=1.0, band_lo=900, band_hi=3000, noise_decay=(.08, .14), bursts=3),
    "hat": dict(length=.12, noise=1.0, band_lo=(6000, 7000), band_hi=10500, noise_decay=(.02, .05),
                metal=(.3, .6)),
    "open_hat": dict(length=.6, noise=1.0, band_lo=6000, band_hi=10500, noise_decay=(.2, .35), metal=.4),
    "ride": dict(length=1.5, noise=.3, band_lo=(4500, 5500), band_hi=10000, noise_decay=(.6, 1.0),
                 metal=1.0),
    "crash": dict(length=2.0, noise=1.0, band_lo=4500, band_hi=10500, noise_decay=(.8, 1.4), metal=.3),
    "tom": dict(length=.5, f0=(90, 160), sweep=(160, 220), body=(.15, .3), noise=.2, band_lo=1000,
                band_hi=4000, noise_decay=.02),
    "rim": dict(length=.08, f0=(400, 500), sweep=(500, 600), body=.01, noise=.5, band_lo=1500,
                band_hi=5000, noise_decay=.01),
    "brush": dict(length=.3, noise=1.0, band_lo=2000, band_hi=7000, noise_decay=(.06, .12), attack=.01),
    "shaker": dict(length=.12, noise=1.0, band_lo=5000, band_hi=10000, noise_decay=(.02, .04),
                   attack=.012),
}
VELOCITY = {"X": 1.0, "x": .8, "o": .55, "g": .25}  # 16-step pattern letters; "." = rest
FILL = (("snare", 12, .9), ("snare", 13, .7), ("tom", 14, 1.0), ("tom", 15, .9))  # (voice, step, velocity)


def drum_sound(p: dict, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit, peak 1. [length * sr]"""
    n = int(p["length"] * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    if "f0" in p:
        glide = .012
        phase = p["f0"] * t + (p["sweep"] - p["f0"]) * glide * (1 - np.exp(-t / glide))
        y += np.sin(2 * np.pi * phase) * np.exp(-t / p["body"])
    if "noise" in p:  # band-passed noise, plus inharmonic partials inside the band for cymbals
        hi = min(p["band_hi"], 0.45 * sr)
        lo = min(p["band_lo"], hi / 2)
        source = p["noise"] * rng.standard_normal(n)
        if "metal" in p:
            ratios = np.array([1.0, 1.13, 1.27, 1.41, 1.58, 1.8]) * rng.uniform(.98, 1.02, 6)
            freqs = np.minimum(lo * ratios, hi)[:, None]
            source += p["metal"] * np.sin(2 * np.pi * freqs * t + rng.uniform(0, 6.3, (6, 1))).sum(0)
        env = np.exp(-t / p["noise_decay"]) * np.minimum(t / p.get("attack", 1e-4), 1)
        if "bursts" in p:  # hand clap: a few quick re-attacks
            env = env + sum(np.exp(-(t - d) / .008) * (t >= d) for d in .0115 * np.arange(p["bursts"]))
        sos = signal.butter(2, [lo, hi], "bandpass", fs=sr, output="sos")
        y += signal.sosfilt(sos, source) * env
    return y / (np.abs(y).max() + 1e-9)


# ----------------------------------------------------------------------------- genres
BASS_PATTERNS = {  # (onset beat, length in beats, degree); degree a = approach to the next root
    "pedal": ((0, 4, "r"),),
    "root_fifth": ((0, .9, "r"), (2, .9, "5")),
    "walking": ((0, .95, "r"), (1, .95, "3"), (2, .95, "5"), (3, .95, "a")),
    "boogie": ((0, .9, "r"), (1, .9, "3"), (2, .9, "5"), (3, .9, "6")),
    "octave": tuple((i / 2, .4, "r8"[i % 2]) for i in range(8)),
    "eighths": tuple((i / 2, .45, "r") for i in range(8)),
    "reggae": ((0, .7, "r"), (1.5, .45, "r"), (2, .45, "5"), (2.5, .9, "3"), (3.5, .4, "8")),
    "syncopated": ((0, .6, "r"), (.75, .6, "r"), (1.5, .4, "8"), (2, .6, "r"), (2.75, .6, "5"),
                   (3.5, .4, "r")),
}
COMP_PATTERNS = {  # chord hits within a 4-beat bar: (onset beat, length in beats)
    "strum": tuple((i / 2, .45) for i in range(8)),
    "power8": tuple((i / 2, .4) for i in range(8)),
    "power16": tuple((i / 4, .18) for i in range(16)),
    "skank": ((1, .3), (3, .3)),
    "shuffle": ((0, .9), (1.5, .4), (2, .9), (3.5, .4)),
    "offbeat": ((.5, .25), (1.5, .25), (2.5, .25), (3.5, .25)),
    "pop": ((0, .7), (.75, .7), (1.5, .45), (2, .7), (2.75, .7), (3.5, .45)),
}


@dataclass(frozen=True)
class Style:
    """What a genre owns. Pairs are (lo, hi) ranges drawn per clip; tuples of names are choices."""
    tempo: tuple                      # BPM; ranges overlap across genres on purpose
    swing: tuple                      # share of a unit pair taken by its first unit (0.5 = straight)
    swing_unit: float                 # 0.5 swings eighths, 0.25 sixteenths
    lead: tuple
    chords: tuple
    comp: tuple                       # COMP_PATTERNS names, or "pad", "arpeggio", "jazz"
    bass: tuple                       # BASS_PATTERNS names
    bass_inst: tuple
    drums: tuple = ()                 # 16-step patterns {voice: steps}; () = no drums
    kit: dict = field(default_factory=dict)      # per-voice overrides of DRUMS
    fill_every: tuple = (0,)          # bars between fills (0 = never)
    drive: dict = field(default_factory=dict)    # part -> tanh drive range
    levels: dict = field(default_factory=dict)   # part -> dB range
    reverb: tuple = (.1, .25)         # wet share
    rt60: tuple = (.6, 1.2)
    highpass: tuple = (40, 80)
    lowpass: tuple = (8000, 10500)
    legato: tuple = (.7, .95)
    humanize_ms: float = 6.0
    ghosts: float = 0.0               # chance of a ghost snare on an empty 16th
    pump: tuple = (0, 0)              # side-chain ducking depth of the non-drum parts on each beat


STYLES = {
    "blues": Style(
        tempo=(70, 125), swing=(.62, .68), swing_unit=.5, lead=("guitar", "harmonica"),
        chords=("organ", "piano"), comp=("shuffle",), bass=("walking", "boogie"), bass_inst=("bass_finger",),
        drums=({"kick": "X.......x.......", "snare": "....X.......X...", "hat": "x.o.x.o.x.o.x.o."},
               {"kick": "X.....x.X.......", "snare": "....X.......X..g", "ride": "x.o.x.o.x.o.x.o."}),
        fill_every=(4, 8), drive={"lead": (2, 4)}, reverb=(.15, .3), rt60=(.8, 1.6),
        highpass=(90, 160), lowpass=(4500, 7000), humanize_ms=10, ghosts=.08),
    "classical": Style(
        tempo=(60, 140), swing=(.5, .5), swing_unit=.5, lead=("violin", "flute", "piano"),
        chords=("strings", "piano"), comp=("pad", "arpeggio"), bass=("pedal",), bass_inst=("cello",),
        levels={"chords": (-5, -2), "bass": (-9, -5)}, reverb=(.35, .55), rt60=(1.8, 3.0),
        highpass=(30, 50), lowpass=(7000, 10000), legato=(.9, 1.0), humanize_ms=15),
    "country": Style(
        tempo=(85, 145), swing=(.5, .56), swing_unit=.5, lead=("violin", "guitar"),
        chords=("guitar",), comp=("strum",), bass=("root_fifth",), bass_inst=("bass_finger",),
        drums=({"kick": "X.......X.......", "snare": "....X.......X...", "brush": "xgogxgogxgogxgog"},),
        fill_every=(8,), reverb=(.1, .2), rt60=(.6, 1.0), highpass=(70, 120), lowpass=(7000, 10500),
        legato=(.6, .85), humanize_ms=8),
    "disco": Style(
        tempo=(105, 135), swing=(.5, .53), swing_unit=.25, lead=("synth_lead", "strings"),
        chords=("strings", "guitar"), comp=("offbeat",), bass=("octave",),
        bass_inst=("bass_synth", "bass_finger"),
        drums=({"kick": "X...X...X...X...", "clap": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo",
                "open_hat": "..x...x...x...x."},),
        fill_every=(8,), levels={"bass": (0, 3)}, reverb=(.1, .2), rt60=(.6, 1.2),
        highpass=(35, 60), lowpass=(9000, 10500), humanize_ms=2),
    "hiphop": Style(
        tempo=(75, 105), swing=(.54, .62), swing_unit=.25, lead=("epiano", "bell", "flute"),
        chords=("epiano", "synth_pad"), comp=("pad",), bass=("pedal", "syncopated"), bass_inst=("bass_808",),
        drums=({"kick": "X.....x...X.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
               {"kick": "X..x......X..x..", "clap": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"}),
        kit={"kick": dict(f0=(40, 50), body=(.4, .8))}, levels={"lead": (-6, -2), "drums": (-1, 2)},
        reverb=(.05, .15), rt60=(.4, .8), highpass=(25, 40), lowpass=(4500, 7000), humanize_ms=4),
    "jazz": Style(
        tempo=(90, 170), swing=(.6, .68), swing_unit=.5, lead=("sax", "vibes"),
        chords=("epiano", "piano"), comp=("jazz",), bass=("walking",), bass_inst=("upright",),
        drums=({"ride": "X...x.o.x...x.o.", "hat": "....x.......x...", "kick": "g.......g......."},),
        kit={"snare": dict(noise_decay=(.12, .2), body=(.02, .04)), "kick": dict(f0=(60, 75))},
        levels={"drums": (-6, -3)}, reverb=(.15, .3), rt60=(.9, 1.6), highpass=(50, 90),
        lowpass=(6500, 9500), humanize_ms=12, ghosts=.12),
    "metal": Style(
        tempo=(95, 175), swing=(.5, .5), swing_unit=.5, lead=("guitar",),
        chords=("guitar_dark",), comp=("power16",), bass=("eighths",), bass_inst=("bass_pick",),
        drums=({"kick": "XxXxXxXxXxXxXxXx", "snare": "....X.......X...", "ride": "x.x.x.x.x.x.x.x."},
               {"kick": "X.X.XxX.X.X.XxX.", "snare": "....X.......X...", "crash": "x...x...x...x..."}),
        kit={"kick": dict(noise=(.4, .6), body=(.08, .15))}, fill_every=(4, 8),
        drive={"lead": (5, 10), "chords": (12, 25)}, levels={"chords": (0, 2)}, reverb=(.05, .15),
        rt60=(.5, 1.0), highpass=(70, 110), humanize_ms=2),
    "pop": Style(
        tempo=(90, 130), swing=(.5, .54), swing_unit=.25, lead=("bell", "piano"),
        chords=("piano", "synth_pad"), comp=("pop", "pad"), bass=("syncopated",), bass_inst=("bass_synth",),
        drums=({"kick": "X.....x.X.......", "snare": "....X.......X...", "hat": "..x...x...x...x."},
               {"kick": "X.......X.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."}),
        fill_every=(8,), reverb=(.3, .45), rt60=(1.2, 2.0), highpass=(35, 60), humanize_ms=2,
        pump=(.4, .7)),
    "reggae": Style(
        tempo=(65, 100), swing=(.5, .58), swing_unit=.25, lead=("organ", "harmonica", "guitar"),
        chords=("organ", "guitar"), comp=("skank",), bass=("reggae",), bass_inst=("bass_finger",),
        drums=({"kick": "........X.......", "rim": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
               {"kick": "X...X...X...X...", "rim": "....X.......X...", "hat": "..x...x...x...x."}),
        levels={"bass": (1, 4)}, reverb=(.15, .3), rt60=(.8, 1.5), highpass=(30, 50),
        lowpass=(5500, 8500), humanize_ms=6),
    "rock": Style(
        tempo=(95, 155), swing=(.5, .5), swing_unit=.5, lead=("guitar",),
        chords=("guitar",), comp=("strum", "power8"), bass=("eighths",), bass_inst=("bass_pick",),
        drums=({"kick": "X.....x.X.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
                "crash": "X..............."},
               {"kick": "X.......X.x.....", "snare": "....X.......X...", "open_hat": "x.x.x.x.x.x.x.x."}),
        fill_every=(4, 8), drive={"lead": (3, 5), "chords": (4, 8)}, reverb=(.1, .25), rt60=(.7, 1.3),
        highpass=(80, 130), lowpass=(6000, 8000), humanize_ms=5, ghosts=.04),
}
PART_LEVELS = {"lead": (-2, 1), "chords": (-5, -2), "bass": (-4, -1), "drums": (-4, -1)}


class BeatGrid:
    """Maps beats to seconds at a tempo, delaying off-beat units by the swing ratio."""

    def __init__(self, tempo: float, swing: float, unit: float):
        self.tempo, self.swing, self.unit = tempo, swing, unit

    def seconds(self, beats):
        pair = 2 * self.unit
        whole, r = np.divmod(np.asarray(beats, float), pair)
        r = r / pair
        warped = np.where(r < .5, r * 2 * self.swing, self.swing + (r - .5) * 2 * (1 - self.swing))
        return (whole + warped) * pair * 60.0 / self.tempo


# ----------------------------------------------------------------------------- parts (events)
# an event is (onset beat, length in beats, MIDI pitch, velocity, extra delay in seconds)
def melody_events(content: Content, n_beats: float, rng, legato: float) -> list:
    """The content's melody looped over the clip, articulated by the genre."""
    events = []
    for start in np.arange(0, n_beats, content.length_beats):
        for onset, length, pitch in content.melody:
            events.append((start + onset, length * legato, pitch, rng.uniform(.75, 1.0), 0.0))
    return events


def voicing(root_pc: int, tones: tuple, low: int) -> list:
    """Close-position chord with its root in [low, low + 12)."""
    root = low + (root_pc - low) % 12
    return [root + t for t in tones]


def comp_events(pattern: str, content: Content, n_beats: float, rng) -> list:
    """Chord accompaniment: sustained pads, broken chords, strums, stabs or jazz comping."""
    events, bpc = [], content.beats_per_chord
    if pattern in ("pad", "arpeggio"):
        for start in np.arange(0, n_beats, bpc):
            root, tones = content.chord_at(start)
            if pattern == "pad":
                events += [(start, bpc, m, .8, 0.0) for m in voicing(root, tones, 48)]
            else:
                notes = voicing(root, tones, 48) + [m + 12 for m in voicing(root, tones, 48)]
                cycle = notes + notes[-2:0:-1]
                events += [(start + i / 2, .5, cycle[i % len(cycle)], .7 + .3 * (i % 4 == 0), 0.0)
                           for i in range(2 * bpc)]
        return events
    power = pattern.startswith("power")
    strum_s = rng.uniform(.008, .02) if pattern == "strum" else 0.0
    for bar in np.arange(0, n_beats, 4):
        if pattern == "jazz":
            onsets = np.sort(rng.choice(np.arange(8) / 2, rng.integers(2, 4), replace=False))
            hits = [(o, rng.uniform(.4, 1.2)) for o in onsets]
        else:
            hits = COMP_PATTERNS[pattern]
        for i, (onset, length) in enumerate(hits):
            root, tones = content.chord_at(bar + onset)
            notes = voicing(root, (0, 7, 12), 40) if power else voicing(root, tones, 52)
            notes = notes[::-1] if i % 2 else notes  # alternate strum direction
            vel = rng.uniform(.7, 1.0) * (1.0 if onset % 1 == 0 else .8)
            events += [(bar + onset, length, m, vel, j * strum_s) for j, m in enumerate(notes)]
    return events


def bass_events(style: str, content: Content, n_beats: float, rng) -> list:
    """Bass line from the chord roots in one of the BASS_PATTERNS."""
    events, bpc = [], content.beats_per_chord
    for start in np.arange(0, n_beats, bpc):
        root_pc, tones = content.chord_at(start)
        root = 28 + (root_pc - 4) % 12  # E1..D#2
        nxt = 28 + (content.chord_at(start + bpc)[0] - 4) % 12
        pattern = [e for e in BASS_PATTERNS[style] if e[0] < bpc]
        if style == "walking":  # the last note of a chord leads into the next root
            pattern[-1] = (pattern[-1][0], pattern[-1][1], "a")
        for onset, length, degree in pattern:
            pitch = {"r": root, "3": root + tones[1], "5": root + 7, "8": root + 12,
                     "6": root + (9 if tones[1] == 4 else 10), "a": nxt + (1 if nxt < root else -1)}[degree]
            events.append((start + onset, min(length, bpc - onset), pitch, rng.uniform(.8, 1.0), 0.0))
    return events


def render_events(events: list, inst: Instrument, grid: BeatGrid, n: int, rng, humanize_ms: float):
    """Sum the instrument's notes at their (swung, humanised) times. [n]"""
    out = np.zeros(n + inst.max_n)
    for beat, length, midi, vel, delay in events:
        t0 = float(grid.seconds(beat)) + delay + rng.normal(0, humanize_ms / 1000)
        start = int(max(t0, 0) * inst.sr)
        if start >= n:
            continue
        note = inst.note(midi, float(grid.seconds(beat + length) - grid.seconds(beat))) * vel
        out[start:start + len(note)] += note
    return out[:n]


def tune(p: dict, key_pcs: np.ndarray) -> dict:
    """Retune a pitched drum to the nearest note of ``key_pcs`` (as producers tune kicks and toms)."""
    if "f0" not in p:
        return p
    midi = 69 + 12 * np.log2(p["f0"] / 440)
    candidates = np.arange(12, 100)[np.isin(np.arange(12, 100) % 12, key_pcs)]
    ratio = midi_hz(candidates[np.argmin(np.abs(candidates - midi))]) / p["f0"]
    return {**p, "f0": p["f0"] * ratio, "sweep": p["sweep"] * ratio}


def drum_plan(style: Style, rng) -> tuple[dict, int, list]:
    """The clip's drum pattern (voice -> 16 steps), bars between fills (0 = never) and the
    voices its hits use (sorted)."""
    pattern = style.drums[rng.integers(len(style.drums))]
    fill_every = int(rng.choice(style.fill_every))
    voices = set(pattern) | ({"tom", "crash", "snare"} if fill_every else set()) \
        | ({"snare"} if style.ghosts else set())
    return pattern, fill_every, sorted(voices)


def drum_hits(style: Style, pattern: dict, fill_every: int, grid: BeatGrid, n: int, sr: int, rng) -> list:
    """The hits of ``pattern`` over ``n`` samples with ghost notes, fills and crashes after
    them, humanised: (voice, step 0..15, onset in seconds, velocity, accent in [.85, 1])."""
    out = []
    n_bars = int(np.ceil(n / sr * grid.tempo / 60 / 4))
    for bar in range(n_bars):
        hits = [(v, s, VELOCITY[c]) for v, steps in pattern.items() for s, c in enumerate(steps) if c != "."]
        if style.ghosts:
            hits += [("snare", s, .2) for s in range(16) if rng.random() < style.ghosts]
        if fill_every and bar % fill_every == fill_every - 1:
            hits = [h for h in hits if h[1] < 12] + list(FILL)
        if fill_every and bar % fill_every == 0 and bar > 0:
            hits.append(("crash", 0, 1.0))
        for voice, step, vel in hits:
            t0 = float(grid.seconds(4 * bar + step / 4)) + rng.normal(0, style.humanize_ms / 1000)
            if int(max(t0, 0) * sr) < n:
                out.append((voice, step, t0, vel, rng.uniform(.85, 1.0)))
    return out


def render_drums(style: Style, grid: BeatGrid, n: int, sr: int, rng, key_pcs: np.ndarray) -> np.ndarray:
    """The genre's kit, tuned to the key, playing its 16-step pattern with fills and ghost notes. [n]"""
    pattern, fill_every, voices = drum_plan(style, rng)
    kit = {v: drum_sound(tune(draw({**DRUMS[v], **style.kit.get(v, {})}, rng), key_pcs), sr, rng)
           for v in voices}
    levels = {v: 10 ** (rng.uniform(-3, 0) / 20) for v in voices}
    out = np.zeros(n + 2 * sr)
    for voice, _, t0, vel, accent in drum_hits(style, pattern, fill_every, grid, n, sr, rng):
        start = int(max(t0, 0) * sr)
        sound = kit[voice] * vel * levels[voice] * accent
        out[start:start + len(sound)] += sound
    return out[:n]


# ----------------------------------------------------------------------------- mixing
def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)) + 1e-12)


def side_chain(grid: BeatGrid, n: int, sr: int, depth: float) -> np.ndarray:
    """Gain that ducks by ``depth`` on every beat and recovers (kick side-chain). [n]"""
    t = np.arange(n) / sr
    beats = grid.seconds(np.arange(np.ceil(n / sr * grid.tempo / 60) + 1))
    since = t - beats[np.searchsorted(beats, t, side="right") - 1]
    return 1 - depth * np.exp(-since / .12)


def room(x: np.ndarray, sr: int, rng, wet: float, rt60: float) -> np.ndarray:
    """Reverb: convolution with exponentially decaying, darkened noise. [T] -> [T]"""
    t = np.arange(int(min(rt60, 2.5) * sr)) / sr
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    ir = signal.sosfilt(signal.butter(1, min(rng.uniform(3000, 6000), .45 * sr), fs=sr, output="sos"), ir)
    ir = np.concatenate([np.zeros(int(rng.uniform(.01, .03) * sr)), ir / np.sqrt(np.sum(ir ** 2))])
    return np.sqrt(1 - wet) * x + np.sqrt(wet) * signal.oaconvolve(x, ir)[:len(x)]


def band(x: np.ndarray, sr: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Genre EQ: high-pass and low-pass (Butterworth)."""
    x = signal.sosfilt(signal.butter(2, low_hz, "highpass", fs=sr, output="sos"), x)
    if high_hz < .45 * sr:
        x = signal.sosfilt(signal.butter(4, high_hz, fs=sr, output="sos"), x)
    return x


def tilt_to_centroid(x: np.ndarray, sr: int, target_hz: float) -> np.ndarray:
    """Spectral tilt (dB/octave about 1 kHz) that moves the mean frame centroid to ``target_hz``."""
    frames = x[:len(x) // 2048 * 2048].reshape(-1, 2048)
    if len(frames) == 0:
        frames = np.pad(x, (0, 2048 - len(x)))[None]
    mag = np.abs(np.fft.rfft(frames * np.hanning(2048), axis=1))   # (frames, 1025)
    freqs = np.fft.rfftfreq(2048, 1 / sr)

    def gain(f, slope):
        return (np.maximum(f, 60.0) / 1000.0) ** (slope / 6.02)

    def centroid(slope):
        weighted = mag * gain(freqs, slope)
        return np.mean(weighted @ freqs / (weighted.sum(1) + 1e-9))

    lo, hi = -9.0, 9.0
    for _ in range(30):  # the centroid grows with the slope: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if centroid(mid) < target_hz else (lo, mid)
    spectrum = np.fft.rfft(x)
    return np.fft.irfft(spectrum * gain(np.fft.rfftfreq(len(x), 1 / sr), (lo + hi) / 2), len(x))


def limit_peaks(x: np.ndarray, sr: int, ceiling: float = PEAK) -> np.ndarray:
    """Look-ahead peak limiter: smooth gain, never above ceiling / |x| near a peak. [T] -> [T]"""
    half = max(int(.004 * sr), 1)
    peaks = ndimage.maximum_filter1d(np.abs(x), 2 * half + 1)
    gain = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-9))
    gain = ndimage.uniform_filter1d(gain, half | 1, mode="nearest")  # window inside the max window
    return np.clip(x * gain, -ceiling, ceiling)


# ----------------------------------------------------------------------------- public API
def _clip_rng(content_id: int, genre: str, seed: int, variant: int) -> np.random.Generator:
    return np.random.default_rng([2, seed, GENRES.index(genre), content_id, variant])


def clip_timing(content_id: int, genre: str, *, seed: int = 0, variant: int = 0) -> tuple[float, float]:
    """(tempo in BPM, swing ratio) that :func:`render_clip` draws for this clip."""
    _check_clip_args(content_id, genre, GTZAN_SR, 1.0, seed, variant)
    style, rng = STYLES[genre], _clip_rng(content_id, genre, seed, variant)
    return float(rng.uniform(*style.tempo)), float(rng.uniform(*style.swing))


def render_clip(content_id: int, genre: str, *, sr: int = GTZAN_SR, duration: float = 30.0, seed: int = 0,
                variant: int = 0, tempo: float | None = None, swing: float | None = None) -> np.ndarray:
    """Render one clip of ``content_id`` in ``genre``.

    Parameters
    ----------
    content_id : int >= 0, selects key, chords, melody and rhythm (the same in every genre).
    genre : one of GENRES.
    sr, duration : sample rate (Hz) and length (s).
    seed, variant : select the genre-parameter draw (tempo, instruments, kit, mix, ...).
    tempo, swing : replace the drawn tempo (BPM) and swing ratio (everything else is drawn
        as without them), e.g. another clip's :func:`clip_timing`.

    Returns
    -------
    np.ndarray, float32, shape [T] with T = round(sr * duration), peaks <= 0.89.
    """
    _check_clip_args(content_id, genre, sr, duration, seed, variant)
    style, content = STYLES[genre], make_content(content_id)
    rng = _clip_rng(content_id, genre, seed, variant)
    n = round(sr * duration)
    drawn_tempo, drawn_swing = rng.uniform(*style.tempo), rng.uniform(*style.swing)
    grid = BeatGrid(drawn_tempo if tempo is None else float(tempo), drawn_swing if swing is None else float(swing),
                    style.swing_unit)
    n_beats = duration * grid.tempo / 60 + 1
    hold = min(float(grid.seconds(8)) + 1, duration + 1)  # longest note + release
    parts = {  # part -> (instrument name, events)
        "lead": (rng.choice(style.lead), melody_events(content, n_beats, rng, rng.uniform(*style.legato))),
        "chords": (rng.choice(style.chords), comp_events(rng.choice(style.comp), content, n_beats, rng)),
        "bass": (rng.choice(style.bass_inst), bass_events(rng.choice(style.bass), content, n_beats, rng)),
    }
    mix = np.zeros(n)
    for part, (inst_name, events) in parts.items():
        bus = play_part(Instrument(str(inst_name), sr, rng, hold), events, grid, n, rng, style,
                        drive=rng.uniform(*style.drive[part]) if part in style.drive else 0.0)
        mix += bus / rms(bus) * 10 ** (rng.uniform(*style.levels.get(part, PART_LEVELS[part])) / 20)
    if style.pump[1] > 0:
        mix *= side_chain(grid, n, sr, rng.uniform(*style.pump))
    if style.drums:
        drums = render_drums(style, grid, n, sr, rng, key_pcs=(content.tonic + np.array([0, 7])) % 12)
        mix += drums / rms(drums) * 10 ** (rng.uniform(*style.levels.get("drums", PART_LEVELS["drums"])) / 20)
    return master(mix, style, sr, rng).astype(np.float32)


def play_part(inst: Instrument, events: list, grid: BeatGrid, n: int, rng, style: Style, drive: float):
    """One part's bus: the notes, the instrument's filter, then an amp (tanh drive + cabinet). [n]"""
    sr = inst.sr
    bus = render_events(events, inst, grid, n, rng, style.humanize_ms)
    if "lowpass" in inst.p:
        bus = signal.sosfilt(signal.butter(2, min(inst.p["lowpass"], .45 * sr), fs=sr, output="sos"), bus)
    return amp(bus, sr, rng, drive)


def amp(bus: np.ndarray, sr: int, rng, drive: float) -> np.ndarray:
    """Guitar amp: tanh drive (gain relative to the bus's RMS), then a cabinet low-pass; no-op at 0. [T]"""
    if drive > 0:
        bus = np.tanh(drive * bus / (4 * rms(bus)))
        cabinet_hz = min(rng.uniform(3500, 5500), .45 * sr)
        bus = signal.sosfilt(signal.butter(2, cabinet_hz, fs=sr, output="sos"), bus)
    return bus


def master(mix: np.ndarray, style: Style, sr: int, rng) -> np.ndarray:
    """Room, genre EQ, then brightness and loudness drawn from ranges shared by all genres. [T] -> [T]"""
    mix = room(mix, sr, rng, rng.uniform(*style.reverb), rng.uniform(*style.rt60))
    mix = band(mix, sr, rng.uniform(*style.highpass), rng.uniform(*style.lowpass))
    mix = tilt_to_centroid(mix, sr, rng.uniform(*CENTROID_HZ) * min(1.0, sr / GTZAN_SR))
    mix *= 10 ** (rng.uniform(*RMS_DB) / 20) / rms(mix)
    return limit_peaks(mix, sr)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_clip_args(content_id, genre, sr, duration, seed, variant) -> None:
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; expected one of {GENRES}")
    for name, value in (("content_id", content_id), ("seed", seed), ("variant", variant)):
        _check_int(name, value, 0)
    _check_int("sr", sr, 8000)
    if isinstance(duration, bool) or not isinstance(duration, (int, float, np.number)) \
            or not np.isfinite(duration) or round(sr * duration) < 1:
        raise ValueError(f"duration must be > 0 seconds (at least one sample), got {duration!r}")
