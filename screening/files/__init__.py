"""Spreadsheet files: reading CSV and Excel imports, writing templates, exports and failed rows.

Pure functions over bytes: the server reads uploaded files with them, and
screenctl and the console write templates with them, so every client gets
the same columns, words and checks.
"""
