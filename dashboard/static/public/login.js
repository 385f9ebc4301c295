// The login page: posts the credentials to the server's session endpoint and, on
// success, goes to where the operator was heading (?next=, only paths under /ui/).
const form = document.getElementById('login');
const errorBox = document.getElementById('login-error');

function target() {
  const next = new URLSearchParams(location.search).get('next') || '';
  return next.startsWith('/ui/') && !next.startsWith('//') ? next : '/ui/';
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  errorBox.hidden = true;
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const res = await fetch('/api/v1/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify({ user: form.username.value.trim(), password: form.password.value }),
    });
    if (!res.ok) {
      let msg = `sign-in failed (HTTP ${res.status})`;
      try { const body = await res.json(); if (body.error) msg = body.error; } catch { /* not JSON */ }
      throw new Error(msg);
    }
    location.assign(target());
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
