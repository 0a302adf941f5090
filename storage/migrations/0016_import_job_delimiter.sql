-- The separator of an imported CSV file (',' or ';'), so that its failed-rows
-- file is written with it: an Excel set up for ';' opens a ','-separated file
-- as one column. Empty for a workbook, for rows sent by a program, and for
-- jobs from before this column (their failed rows are written with ',').
ALTER TABLE import_jobs ADD COLUMN delimiter text NOT NULL DEFAULT '';
