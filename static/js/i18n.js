// The page's language for scripts: the JSON catalog the server builds from the same .po files as
// the templates (translations, the plural rule, and the CLDR patterns and names of times and
// tenge), so a script writes a time or a price exactly as the page around it does, whatever
// locale data the browser has. Times are shown in the page's zone (the user's, else
// Asia/Almaty), never the browser's; only the zone's offset is asked of the browser.
//
// Strings are marked for `pybabel extract` by the calls _('…'), ngettext('…', '…', n) and
// pgettext('context', '…'), with string literals only; placeholders are written {name}.

export const lang = document.documentElement.lang || 'ru';
export const timeZone = document.body.dataset.timeZone || 'Asia/Almaty';

// Used only when the catalog cannot be loaded: the page still works, in English, numeric dates.
const FALLBACK = {
  plural_forms: 'nplurals=2; plural=(n != 1);',
  messages: {},
  formats: {
    patterns: { date: 'dd.MM.y', time: 'HH:mm', datetime: 'dd.MM.y HH:mm', day: 'dd.MM', daymonth: 'dd.MM' },
    range_dash: ' – ',
    months: {},
    days: {},
    number: { decimal: '.', group: ',', grouping: 3, money_prefix: '', money_suffix: ' ₸' },
  },
};

async function loadCatalog() {
  const url = document.querySelector('meta[name="i18n-catalog"]')?.content;
  if (!url) return FALLBACK;
  try {
    const resp = await fetch(url, { credentials: 'same-origin' });
    return resp.ok ? await resp.json() : FALLBACK;
  } catch {
    return FALLBACK;
  }
}

const catalog = await loadCatalog();
const F = catalog.formats;

// --- plural rule -----------------------------------------------------------------------------
// The catalog's gettext Plural-Forms expression, read by a small parser of its C subset
// (n, integers, ! % * / + - < > <= >= == != && || ?: and parentheses): the pages' CSP rules out
// eval, and the browser's Intl.PluralRules may not know the language.

export function pluralRule(header) {
  const source = /plural\s*=\s*([^;]+)/.exec(header)?.[1] ?? '(n != 1)';
  const tokens = source.match(/n|\d+|&&|\|\||[=!<>]=|[-+*/%!<>?:()]/g) || [];
  let pos = 0;
  const peek = () => tokens[pos];
  const take = () => tokens[pos++];
  const binary = (next, ops) => () => {
    let left = next();
    while (ops[peek()]) {
      const op = ops[take()];
      const right = next();
      const l = left;
      left = (n) => op(l(n), right(n));
    }
    return left;
  };
  const primary = () => {
    const tok = take();
    if (tok === 'n') return (n) => n;
    if (tok === '(') {
      const inner = ternary();
      take();
      return inner;
    }
    if (tok === '!') {
      const operand = primary();
      return (n) => Number(!operand(n));
    }
    const value = Number(tok);
    return () => value;
  };
  const mul = binary(primary, { '*': (a, b) => a * b, '/': (a, b) => Math.trunc(a / b), '%': (a, b) => a % b });
  const add = binary(mul, { '+': (a, b) => a + b, '-': (a, b) => a - b });
  const rel = binary(add, { '<': (a, b) => +(a < b), '>': (a, b) => +(a > b), '<=': (a, b) => +(a <= b), '>=': (a, b) => +(a >= b) });
  const eq = binary(rel, { '==': (a, b) => +(a === b), '!=': (a, b) => +(a !== b) });
  const and = binary(eq, { '&&': (a, b) => +(a && b) });
  const or = binary(and, { '||': (a, b) => +(a || b) });
  function ternary() {
    const cond = or();
    if (peek() !== '?') return cond;
    take();
    const yes = ternary();
    take();
    const no = ternary();
    return (n) => (cond(n) ? yes(n) : no(n));
  }
  const rule = ternary();
  return (n) => Number(rule(Math.abs(Math.trunc(n))));
}

const pluralIndex = pluralRule(catalog.plural_forms);

// --- translations ----------------------------------------------------------------------------

function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (whole, key) => (key in params ? String(params[key]) : whole));
}

export function _(message, params = {}) {
  const found = catalog.messages[message];
  return fill(typeof found === 'string' ? found : message, params);
}

export function pgettext(context, message, params = {}) {
  const found = catalog.messages[`${context}\u0004${message}`];
  return fill(typeof found === 'string' ? found : message, params);
}

export function ngettext(singular, plural, n, params = {}) {
  const forms = catalog.messages[singular];
  const text = Array.isArray(forms) ? forms[pluralIndex(n)] ?? forms[forms.length - 1] : n === 1 ? singular : plural;
  return fill(text, { n, ...params });
}

// --- numbers and tenge -----------------------------------------------------------------------

const N = F.number;

function groupDigits(digits) {
  const size = N.grouping || 3;
  let out = '';
  for (let end = digits.length; end > 0; end -= size) {
    const start = Math.max(0, end - size);
    out = digits.slice(start, end) + (out ? N.group + out : '');
  }
  return out;
}

// A decimal in the language's symbols, with `digits` places (trailing zeros kept).
export function fixed(value, digits) {
  const [int, frac] = Math.abs(Number(value || 0)).toFixed(digits).split('.');
  return `${Number(value) < 0 ? '-' : ''}${groupDigits(int)}${frac ? N.decimal + frac : ''}`;
}

// Up to `digits` places, trailing zeros dropped: 3.5 → "3,5".
export function decimal(value, digits = 2) {
  const text = fixed(value, digits);
  return text.includes(N.decimal) ? text.replace(/0+$/, '').replace(new RegExp(`\\${N.decimal}$`), '') : text;
}

// Tenge as the server writes them: whole tenge without decimals, else two.
export function money(value) {
  const cents = Math.round(Number(value || 0) * 100);
  const abs = Math.abs(cents);
  const int = groupDigits(String(Math.floor(abs / 100)));
  const text = abs % 100 === 0 ? int : `${int}${N.decimal}${String(abs % 100).padStart(2, '0')}`;
  return `${cents < 0 ? '-' : ''}${N.money_prefix}${text}${N.money_suffix}`;
}

// --- times -----------------------------------------------------------------------------------

let wallFormat;
try {
  wallFormat = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
  });
} catch {
  wallFormat = new Intl.DateTimeFormat('en-US', {
    timeZone: 'Asia/Almaty', hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
  });
}

// The wall clock in the page's zone at `date`.
export function wallClock(date) {
  const parts = {};
  for (const { type, value } of wallFormat.formatToParts(date)) parts[type] = Number(value);
  const w = { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour % 24, minute: parts.minute, second: parts.second };
  w.weekday = new Date(Date.UTC(w.year, w.month - 1, w.day)).getUTCDay();
  return w;
}

const pad = (value, size) => String(value).padStart(size, '0');

function field(letter, count, w) {
  const names = (table, context, width, index) => table[context]?.[width]?.[index] ?? String(index + 1);
  switch (letter) {
    case 'y': return count === 2 ? pad(w.year % 100, 2) : pad(w.year, count);
    case 'M':
    case 'L': {
      const context = letter === 'M' ? 'format' : 'stand-alone';
      if (count >= 3) return names(F.months, context, count >= 4 ? 'wide' : 'abbreviated', w.month - 1);
      return pad(w.month, count);
    }
    case 'd': return pad(w.day, count);
    case 'E': return names(F.days, 'format', count >= 4 ? 'wide' : 'abbreviated', w.weekday);
    case 'c': return names(F.days, 'stand-alone', count >= 4 ? 'wide' : 'abbreviated', w.weekday);
    case 'H': return pad(w.hour, count);
    case 'm': return pad(w.minute, count);
    case 's': return pad(w.second, count);
    default: return letter.repeat(count);
  }
}

// A CLDR date pattern ("d MMM y 'г'., HH:mm") filled from a wall clock.
export function formatPattern(pattern, w) {
  let out = '';
  for (let i = 0; i < pattern.length;) {
    const ch = pattern[i];
    if (ch === "'") {
      let j = i + 1;
      if (pattern[j] === "'") {
        out += "'";
        i += 2;
        continue;
      }
      while (j < pattern.length && !(pattern[j] === "'" && pattern[j + 1] !== "'")) {
        out += pattern[j];
        j += pattern[j] === "'" ? 2 : 1;
      }
      i = j + 1;
    } else if (/[A-Za-z]/.test(ch)) {
      let j = i;
      while (pattern[j] === ch) j += 1;
      out += field(ch, j - i, w);
      i = j;
    } else {
      out += ch;
      i += 1;
    }
  }
  return out;
}

// `iso` (any RFC 3339 time) in format `form`: datetime, date, time, day or daymonth.
export function formatTime(iso, form = 'datetime') {
  return formatPattern(F.patterns[form], wallClock(new Date(iso)));
}

export function formatRange(startIso, endIso) {
  const a = wallClock(new Date(startIso));
  const b = wallClock(new Date(endIso));
  const sameDay = a.year === b.year && a.month === b.month && a.day === b.day;
  return formatPattern(F.patterns.datetime, a) + F.range_dash + formatPattern(F.patterns[sameDay ? 'time' : 'datetime'], b);
}

// A calendar day ("2031-05-11", no zone) in format `form`.
export function formatDay(day, form = 'daymonth') {
  const [year, month, date] = day.split('-').map(Number);
  const weekday = new Date(Date.UTC(year, month - 1, date)).getUTCDay();
  return formatPattern(F.patterns[form], { year, month, day: date, hour: 0, minute: 0, second: 0, weekday });
}

export function sameLocalDay(a, b) {
  const x = wallClock(new Date(a));
  const y = wallClock(new Date(b));
  return x.year === y.year && x.month === y.month && x.day === y.day;
}

// --- form inputs -----------------------------------------------------------------------------

function offsetAt(ms) {
  const whole = Math.floor(ms / 1000) * 1000;
  const w = wallClock(new Date(whole));
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - whole;
}

function offsetText(offsetMs) {
  const minutes = Math.round(offsetMs / 60000);
  const sign = minutes < 0 ? '-' : '+';
  return `${sign}${pad(Math.floor(Math.abs(minutes) / 60), 2)}:${pad(Math.abs(minutes) % 60, 2)}`;
}

// A datetime-local input's value ("2031-05-10T10:00"), read as a wall time in the page's zone:
// {date, rfc3339: "2031-05-10T10:00:00+05:00"}, or null when it is not a time.
export function fromLocalInput(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || '');
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((x) => Number(x || 0));
  const asUtc = Date.UTC(y, mo - 1, d, h, mi, s);
  // Twice, so a wall time next to an offset change settles on the offset in force then.
  const instant = asUtc - offsetAt(asUtc - offsetAt(asUtc));
  const w = wallClock(new Date(instant));
  const text = `${pad(w.year, 4)}-${pad(w.month, 2)}-${pad(w.day, 2)}T${pad(w.hour, 2)}:${pad(w.minute, 2)}:${pad(w.second, 2)}`;
  return { date: new Date(instant), rfc3339: text + offsetText(offsetAt(instant)) };
}

// The value a datetime-local input shows for `date` in the page's zone.
export function toLocalInput(date) {
  const w = wallClock(date);
  return `${pad(w.year, 4)}-${pad(w.month, 2)}-${pad(w.day, 2)}T${pad(w.hour, 2)}:${pad(w.minute, 2)}`;
}

// `days` days after today in the page's zone, at `hour`:00 there.
export function localDaysAhead(days, hour) {
  const w = wallClock(new Date());
  const day = new Date(Date.UTC(w.year, w.month - 1, w.day + days));
  const value = `${day.toISOString().slice(0, 10)}T${pad(hour, 2)}:00`;
  return fromLocalInput(value).date;
}
