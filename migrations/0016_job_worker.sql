-- Who ran a job's latest attempt: the name an external worker gave when it leased
-- the job (its address when it gave none), or "appliance" for in-process handlers.
-- Set by every claim and kept after the job finishes, so that the job page and
-- each failed attempt's entry say where it ran. Adding a nullable column rewrites
-- nothing.
ALTER TABLE jobs ADD COLUMN worker TEXT;
