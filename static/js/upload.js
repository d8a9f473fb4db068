// Photo uploads with progress: XMLHttpRequest, because fetch cannot report how much of a body was
// sent. Same-origin cookie and CSRF header as every other write (api.js); errors as ApiError.
import { ApiError } from './api.js';

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

// What the server takes (it checks the content, not these); HEIC is what iPhones send.
export const IMAGE_ACCEPT = 'image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif';
export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;

export function uploadImage(path, file, { method = 'POST', onProgress } = {}) {
  return new Promise((resolve, reject) => {
    if (file.size > MAX_UPLOAD_BYTES) {
      reject(new ApiError(413, { error: `${file.name} is larger than 10 MB`, code: 'payload_too_large' }));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.responseType = 'json';
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('X-CSRF-Token', csrfToken);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, null)));
    const body = new FormData();
    body.append('file', file);
    xhr.send(body);
  });
}

// A preview of a chosen file; HEIC cannot be shown by most browsers, so the name stands in.
export function previewUrl(file) {
  return URL.createObjectURL(file);
}
