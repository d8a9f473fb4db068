// A small bar chart drawn as inline SVG: one bar per day, labelled axes, a tooltip per bar.
import { formatDay, ngettext } from './i18n.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

// series: [{day: 'YYYY-MM-DD', count}]
export function drawBarChart(container, series) {
  // Drawn at the container's own width, so text keeps its real size on a phone.
  const width = Math.max(300, Math.round(container.clientWidth || 720));
  const height = width < 500 ? 200 : 240;
  const labelEvery = width < 500 ? 10 : 5;
  const pad = { top: 16, right: 8, bottom: 28, left: 34 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...series.map((d) => d.count)));
  const slot = innerW / Math.max(1, series.length);
  const barW = Math.max(2, slot * 0.7);

  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': ngettext('Bookings per day, the last {n} day', 'Bookings per day, the last {n} days', series.length),
  });
  for (let i = 0; i <= 4; i += 1) {
    const value = (max / 4) * i;
    const y = pad.top + innerH - (innerH * i) / 4;
    chart.append(svg('line', { class: 'grid-line', x1: pad.left, x2: width - pad.right, y1: y, y2: y }));
    chart.append(svg('text', { class: 'axis-label', x: pad.left - 6, y: y + 4, 'text-anchor': 'end' }, Number.isInteger(value) ? value : value.toFixed(1)));
  }
  series.forEach((d, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const barH = max ? (innerH * d.count) / max : 0;
    const y = pad.top + innerH - barH;
    const label = ngettext('{day}: {n} booking', '{day}: {n} bookings', d.count, { day: formatDay(d.day) });
    const bar = svg('rect', { class: 'bar', x, y, width: barW, height: Math.max(barH, d.count ? 1 : 0), rx: 2, 'data-day': d.day, 'data-count': d.count });
    bar.append(svg('title', {}, label));
    chart.append(bar);
    if (d.count && slot > 14) {
      chart.append(svg('text', { class: 'bar-value', x: x + barW / 2, y: y - 3, 'text-anchor': 'middle' }, d.count));
    }
    // A date under every few bars (and the last), so the axis stays readable.
    if (i % labelEvery === 0 || i === series.length - 1) {
      const last = i === series.length - 1;
      chart.append(svg('text', { class: 'axis-label', x: last ? x + barW : x + barW / 2, y: height - 8, 'text-anchor': last ? 'end' : 'middle' }, formatDay(d.day)));
    }
  });
  container.querySelector('svg')?.remove();
  container.append(chart);
}
