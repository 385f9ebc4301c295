-- deployments_open_source (0020) held the source alone, and the count of a source's
-- open deployments at a site (CountOpenFromSource, HelloFacts: every hello while
-- MaxOpenPerSource is on) asks for source and site: SQLite's planner then took
-- deployments_site (site, id) and read every deployment of the site, open or not
-- (55 000 rows with 55 000 open). With both columns the index answers the count.
DROP INDEX deployments_open_source;
CREATE INDEX deployments_open_source ON deployments (source, site) WHERE state = 'open';
