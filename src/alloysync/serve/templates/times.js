// The viewer's time zone and relative times: every element with data-at (exact UTC, rendered by the
// server with a readable UTC fallback) gets its text in the viewer's zone; its title keeps the UTC.
(() => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const formats = {
    full: new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23", timeZoneName: "short",
    }),
    compact: new Intl.DateTimeFormat(undefined, {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }),
    short: new Intl.DateTimeFormat(undefined, {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }),
  };
  const units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  const relative = (at, now) => {
    const seconds = (at - now) / 1000;
    const size = Math.abs(seconds);
    if (size < 5) return "just now";
    const [unit, name] = units.find(([length]) => size >= length);
    const count = size / unit;
    const shown = unit >= 3600 && count < 10 ? String(Math.round(count * 10) / 10) : String(Math.round(count));
    return seconds < 0 ? `${shown} ${name} ago` : `in ${shown} ${name}`;
  };
  const show = () => {
    const now = Date.now();
    for (const element of document.querySelectorAll("[data-at]")) {
      const at = Date.parse(element.dataset.at);
      if (Number.isNaN(at)) continue;
      // data-show: relative | local | both (local and relative) | compact | recent (compact and
      // relative) | short (no seconds).
      const style = element.dataset.show || "relative";
      if (style === "relative") element.textContent = relative(at, now);
      else if (style === "local") element.textContent = formats.full.format(at);
      else if (style === "both") element.textContent = `${formats.full.format(at)} (${relative(at, now)})`;
      else if (style === "recent") element.textContent = `${formats.compact.format(at)} (${relative(at, now)})`;
      else element.textContent = (formats[style] || formats.full).format(at);
    }
    const note = document.getElementById("zone");
    if (note) note.textContent = `times in ${zone} · hover a time for UTC`;
  };
  show();
  setInterval(show, 10000);
})();
