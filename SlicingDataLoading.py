"""GTZAN data layer: discovery, splits, decoded-audio cache, slicing, Dataset.

(Being written; see the helper's brief.)
"""
GENRES = ("blues", "classical", "country", "disco", "hiphop",
          "jazz", "metal", "pop", "reggae", "rock")
