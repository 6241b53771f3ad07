-- 002: what raw_images (issue 3) records beyond the contract columns.
-- format / color_mode: what the content really is (a PNG named .jpg is an image: ingested, format PNG).
-- note: a remark on an ok row (e.g. unreadable EXIF); `error` stays reserved for failed rows.
-- captured_at_exact: captured_at is a clock reading to the second (EXIF, or a name with a time);
-- bursts link only such frames (a date-only name or a copied file's mtime would glue unrelated frames).
ALTER TABLE images
    ADD COLUMN format text,
    ADD COLUMN color_mode text,
    ADD COLUMN note text,
    ADD COLUMN captured_at_exact boolean NOT NULL DEFAULT false;
CREATE INDEX images_location_status ON images (location_key, status);
