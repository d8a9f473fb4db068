// Photos in the booking chat: the attach button and the preview of chosen photos before sending,
// uploads with progress, thumbnails in the conversation that open full size in a viewer.
import { $, h, toast } from './dom.js';
import { _, ngettext } from './i18n.js';
import { IMAGE_ACCEPT, previewUrl, uploadImage } from './upload.js';

export const MAX_PHOTOS = 4;

const chosen = []; // { file, url }
let onChange = () => {};

const viewer = h('dialog', { class: 'dialog photo-viewer', id: 'photo-viewer', 'aria-label': _('Photo') },
  h('img', { id: 'photo-viewer-img', alt: '' }),
  h('form', { method: 'dialog', class: 'photo-viewer-close' },
    h('button', { type: 'submit', class: 'btn btn-ghost btn-sm', 'aria-label': _('Close photo'), text: '✕' })));
document.body.append(viewer);
viewer.addEventListener('click', (event) => { if (event.target === viewer) viewer.close(); });

function openViewer(attachment) {
  const img = $('#photo-viewer-img');
  img.src = attachment.url;
  img.width = attachment.width;
  img.height = attachment.height;
  viewer.showModal();
}

// The photos of a message, as thumbnails that open the display size.
export function attachmentsNode(msg) {
  if (!msg.attachments || !msg.attachments.length) return null;
  return h('div', { class: 'msg-photos' }, msg.attachments.map((a) =>
    h('button', { type: 'button', class: 'msg-photo', 'aria-label': _('Open photo'), dataset: { attachmentId: a.attachment_id }, onclick: () => openViewer(a) },
      h('img', { src: a.thumb_url, alt: _('Photo'), loading: 'lazy', width: Math.min(a.width, 160), height: Math.round(Math.min(a.width, 160) * a.height / a.width) }))));
}

// The previews of photos being sent: each with its progress, filled in as the upload goes.
export function pendingPhotosNode(photos) {
  if (!photos.length) return null;
  return h('div', { class: 'msg-photos' }, photos.map((p) =>
    h('figure', { class: 'msg-photo pending-photo' },
      h('img', { src: p.url, alt: p.file.name }),
      h('progress', { max: 100, value: 0, 'aria-label': _('Uploading {name}', { name: p.file.name }) }))));
}

// Upload the photos of a message (in order), showing each one's progress in `node`; their ids.
export async function uploadPhotos(bookingId, photos, node) {
  const bars = node.querySelectorAll('.pending-photo progress');
  const ids = [];
  for (const [i, p] of photos.entries()) {
    const done = await uploadImage(`/api/bookings/${bookingId}/attachments`, p.file, {
      onProgress: (share) => { if (bars[i]) bars[i].value = Math.round(share * 100); },
    });
    if (bars[i]) bars[i].value = 100;
    ids.push(done.attachment_id);
  }
  return ids;
}

// Hand the chosen photos over (the composer is cleared) when a message is sent.
export function takeChosen() {
  const taken = chosen.splice(0);
  renderChosen();
  return taken;
}

export function chosenCount() {
  return chosen.length;
}

function renderChosen() {
  const strip = $('#composer-photos');
  strip.replaceChildren(...chosen.map((p, i) =>
    h('li', { class: 'composer-photo' },
      h('img', { src: p.url, alt: p.file.name, title: p.file.name }),
      h('button', { type: 'button', class: 'composer-photo-remove', 'aria-label': _('Remove {name}', { name: p.file.name }), text: '✕', onclick: () => { URL.revokeObjectURL(p.url); chosen.splice(i, 1); renderChosen(); } }))));
  strip.hidden = chosen.length === 0;
  onChange(chosen.length);
}

export function setUpComposerPhotos(changed) {
  onChange = changed;
  const input = $('#composer-file');
  input.accept = IMAGE_ACCEPT;
  input.addEventListener('change', () => {
    for (const file of input.files) {
      if (chosen.length >= MAX_PHOTOS) {
        toast(ngettext('At most {n} photo per message', 'At most {n} photos per message', MAX_PHOTOS), 'error');
        break;
      }
      chosen.push({ file, url: previewUrl(file) });
    }
    input.value = '';
    renderChosen();
  });
}
