// The site the dashboard shows (rpi-deployd serve --site; docs/api.md "Sites"): one
// site's boards and deployments, or every site's (""). It lives in the page URL's
// query, /ui/?site=NAME#/fleet, so that a reload or a link shows the same site and
// moving between pages (the hash) keeps it.

const NAME = /^[a-z0-9-]{1,32}$/;

// currentSite is the site in the URL, "" for all sites (or a name that cannot be one).
export function currentSite() {
  const s = new URLSearchParams(location.search).get('site') || '';
  return NAME.test(s) ? s : '';
}

// setSite puts site ("" = all) in the URL without reloading, then tells listeners
// (the live view, the shell) through a "sitechange" event on window.
export function setSite(site) {
  const u = new URL(location.href);
  if (site) u.searchParams.set('site', site); else u.searchParams.delete('site');
  history.replaceState(history.state, '', u.pathname + u.search + u.hash);
  window.dispatchEvent(new CustomEvent('sitechange', { detail: site }));
}

// siteQuery is the query that filters a list by the current site ({} for all).
export function siteQuery() {
  const s = currentSite();
  return s ? { site: s } : {};
}
