"""The input layer: files as users have them, turned into distdl's planned columns.

One job per module; :mod:`~distdl.inputs.pipeline` composes them for the planner:

- ``meta`` parses a Darwin Core Archive's ``meta.xml``; ``archive`` streams its members
  from the zip (``zipfile.ZipFile.open`` decompresses as it reads) or folder, never
  unpacking: python-dwca-reader extracts archives to a temporary folder, which a 300 GB
  GBIF download cannot afford, so it is not used.
- ``sources`` tells an input's kind by content and opens it as named string columns;
  ``text_table`` streams delimited text; ``columns`` checks header names.
- ``presets`` (``presets/*.yaml``) and ``mapping`` map input columns onto distdl's.
- ``ids`` derives stable uuid5 ids; ``licences`` (``licences.yaml``) normalises licences.
- ``filters``, ``repeats``, ``previous`` and ``sampling`` set rows aside, counted by reason
  in ``tally`` (``filtered.json`` next to the plan).
- ``join`` adds occurrence fields with bounded memory; ``provenance`` writes DATASET.md.
"""
