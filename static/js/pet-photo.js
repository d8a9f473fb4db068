// A pet's photo on the owner's dashboard: its thumbnail in the list, and in the pet form the
// current photo, a new one chosen (previewed, uploaded with progress once the pet is saved) or
// its removal.
import { api } from './api.js';
import { $, h } from './dom.js';
import { _ } from './i18n.js';
import { IMAGE_ACCEPT, previewUrl, uploadImage } from './upload.js';

const input = $('#pet-photo-file');
const preview = $('#pet-photo-preview');
const removeButton = $('#pet-photo-remove');
const progress = $('#pet-photo-progress');
let chosen = null; // a File
let remove = false;

input.accept = IMAGE_ACCEPT;

export function petAvatar(pet) {
  if (pet.photo) return h('img', { class: 'pet-photo', src: pet.photo.thumb_url, alt: _('Photo of {name}', { name: pet.name }) });
  return h('span', { class: 'pet-icon', 'aria-hidden': 'true', text: pet.name.slice(0, 1).toUpperCase() });
}

function show(url) {
  if (preview.src.startsWith('blob:')) URL.revokeObjectURL(preview.src);
  preview.hidden = !url;
  if (url) preview.src = url;
  else preview.removeAttribute('src');
  removeButton.hidden = !url;
}

// The form opened for `pet` (null: a new pet).
export function resetPetPhoto(pet) {
  chosen = null;
  remove = false;
  input.value = '';
  progress.hidden = true;
  show(pet?.photo?.thumb_url || null);
}

input.addEventListener('change', () => {
  chosen = input.files[0] || null;
  remove = false;
  if (chosen) show(previewUrl(chosen));
});

removeButton.addEventListener('click', () => {
  chosen = null;
  remove = true;
  input.value = '';
  show(null);
});

// After the pet itself was saved: its photo changed as chosen; the pet as it now is.
export async function savePetPhoto(pet) {
  const path = `/api/pets/${pet.pet_id}/photo`;
  if (chosen) {
    progress.hidden = false;
    progress.value = 0;
    try {
      const saved = await uploadImage(path, chosen, { method: 'PUT', onProgress: (share) => { progress.value = Math.round(share * 100); } });
      chosen = null;
      return saved;
    } finally {
      progress.hidden = true;
    }
  }
  if (remove && pet.photo) {
    await api(path, { method: 'DELETE' });
    remove = false;
    return { ...pet, photo: null };
  }
  return pet;
}
