// The demo page: warms the model on load, shows real progress from /status, then
// sends the chosen photo to /remove-bg and shows the cut-out on a checkerboard.
'use strict';

const el = (id) => document.getElementById(id);
const POLL_MS = 250;
let maxUploadBytes = 0;
let resultUrl = null;

function setText(id, text, isError) {
  const node = el(id);
  node.textContent = text;
  node.classList.toggle('error', Boolean(isError));
}

function seconds(ms) {
  return ms >= 1000 ? (ms / 1000).toFixed(1) + ' s' : Math.round(ms) + ' ms';
}

// Renders one /status snapshot; returns true when polling should stop.
function showStatus(s) {
  document.body.dataset.state = s.state;
  maxUploadBytes = s.max_upload_bytes || 0;
  const percent = Math.round((s.progress || 0) * 100);
  el('progress').value = percent;
  el('retry').hidden = s.state !== 'failed';
  el('file').disabled = s.state !== 'ready';
  if (s.state === 'ready') {
    const took = (s.open_ms || 0) + (s.load_ms || 0) + (s.warmup_ms || 0);
    setText('status-text', 'Ready: the model was prepared in ' + seconds(took) + ' on ' + s.device + '.');
    setText('status-detail', 'model ' + s.model + ', ' + s.precision + ', loaded in ' + seconds(s.load_ms) +
            ', warmed in ' + seconds(s.warmup_ms) + ' (' + s.warmup_runs + ' runs)' +
            (s.random_weights ? ', random weights: the cut-outs will be meaningless' : ''));
    return true;
  }
  if (s.state === 'failed') {
    const e = s.last_error || {};
    setText('status-text', 'The model could not be prepared: ' + (e.message || 'unknown error'), true);
    setText('status-detail', e.code || '');
    return true;
  }
  setText('status-text', 'Preparing the model… ' + percent + '%');
  setText('status-detail', s.state === 'warming'
    ? 'warming up on ' + s.device + ' (' + s.warmup_runs + ' runs so far)'
    : (s.state === 'loading' ? 'loading onto ' + s.device : ''));
  return false;
}

async function fetchJson(url, init) {
  const response = await fetch(url, init);
  return response.json();
}

async function poll() {
  try {
    const s = await fetchJson('/status');
    if (showStatus(s)) return;
  } catch (err) {
    setText('status-text', 'Cannot reach the server: ' + err.message, true);
  }
  setTimeout(poll, POLL_MS);
}

async function warmup() {
  el('retry').hidden = true;
  try {
    showStatus(await fetchJson('/warmup', { method: 'POST' }));
  } catch (err) {
    setText('status-text', 'Cannot reach the server: ' + err.message, true);
  }
  poll();
}

async function removeBackground(file) {
  if (maxUploadBytes && file.size > maxUploadBytes) {
    setText('upload-text', 'That file is ' + (file.size / 1048576).toFixed(1) + ' MB; the server accepts up to ' +
            (maxUploadBytes / 1048576).toFixed(1) + ' MB.', true);
    return;
  }
  const params = new URLSearchParams();
  if (el('opt-mask').checked) params.set('mask', '1');
  if (el('opt-clean').checked) params.set('clean_edges', '1');
  const query = params.toString() ? '?' + params.toString() : '';
  const form = new FormData();
  form.append('image', file, file.name);

  el('original').src = URL.createObjectURL(file);
  el('output').hidden = false;
  el('result').removeAttribute('src');
  document.body.dataset.result = 'pending';
  setText('upload-text', 'Removing the background of ' + file.name + '…');
  try {
    const response = await fetch('/remove-bg' + query, { method: 'POST', body: form });
    if (!response.ok) {
      let message = response.status + ' ' + response.statusText;
      try {
        const body = await response.json();
        message = body.error + ' (' + body.code + ')';
      } catch (ignored) { /* not JSON: keep the status line */ }
      document.body.dataset.result = 'error';
      setText('upload-text', 'The server could not do it: ' + message, true);
      return;
    }
    const blob = await response.blob();
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    el('result').src = resultUrl;
    el('download').href = resultUrl;
    el('download').download = file.name.replace(/\.[^.]*$/, '') + (params.has('mask') ? '-mask.png' : '-cutout.png');
    const ms = response.headers.get('X-Petmatte-Ms');
    setText('upload-text', 'Done' + (ms ? ' in ' + seconds(parseFloat(ms)) : '') + '.');
    document.body.dataset.result = 'done';
  } catch (err) {
    document.body.dataset.result = 'error';
    setText('upload-text', 'Upload failed: ' + err.message, true);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  el('retry').addEventListener('click', warmup);
  el('file').addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) removeBackground(file);
  });
  warmup();
});
