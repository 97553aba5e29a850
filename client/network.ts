import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Leaderboard, NetworkSnapshot } from '../shared/api';

type Period = keyof Leaderboard['contributors'];

const $ = (id: string) => document.getElementById(id)!;
let period: Period = 'day';
let latest: NetworkSnapshot | undefined;
let chart: uPlot | undefined;

/** Every value from the server goes in as text: names can never become markup. */
const credits = (c: number) => (c >= 100 ? c.toFixed(0) : c.toPrecision(3));

function cell(row: HTMLTableRowElement, text: string): void {
  row.insertCell().textContent = text;
}

function renderBoards(board: Leaderboard): void {
  const people = $('people').querySelector('tbody')!;
  people.replaceChildren();
  for (const r of board.contributors[period]) {
    const row = people.insertRow();
    [String(r.rank), r.name, r.team ?? '', credits(r.credits)].forEach((t) => cell(row, t));
  }
  const teams = $('teams').querySelector('tbody')!;
  teams.replaceChildren();
  for (const r of board.teams[period]) {
    const row = teams.insertRow();
    [String(r.rank), r.name, String(r.members), credits(r.credits)].forEach((t) => cell(row, t));
  }
  $('updated').textContent = `Updated ${new Date(board.updatedAt).toLocaleTimeString()}.`;
}

function renderVendors(byVendor: Record<string, number>): void {
  const list = $('vendors');
  list.replaceChildren();
  const total = Object.values(byVendor).reduce((a, b) => a + b, 0) || 1;
  for (const [vendor, n] of Object.entries(byVendor).sort((a, b) => b[1] - a[1])) {
    const li = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = `${vendor} · ${n}`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${(100 * n) / total}%`;
    li.append(label, bar);
    list.append(li);
  }
  if (list.children.length === 0) list.textContent = 'No contributors online right now.';
}

function renderChart(series: NetworkSnapshot['series']): void {
  const el = $('chart');
  const data: uPlot.AlignedData = [series.map((p) => p.t), series.map((p) => p.gflops)];
  const width = el.clientWidth || 600;
  if (!chart) {
    chart = new uPlot(
      {
        width,
        height: 220,
        // Always the last 24 hours, so a young network's few points do not stretch the axis over years.
        scales: { x: { time: true, range: () => [Date.now() / 1000 - 86_400, Date.now() / 1000] }, y: { range: (_u, _min, max) => [0, Math.max(max, 1e-9) * 1.1] } },
        series: [{}, { label: 'GFLOPS', stroke: '#2a9d3a', fill: 'rgba(42,157,58,0.15)', width: 2, points: { show: true, size: 4 } }],
        axes: [{}, { label: 'GFLOPS', size: 70, values: (_u, vals) => vals.map((v) => (v === 0 ? '0' : Number(v.toPrecision(2)).toString())) }],
        legend: { show: false },
      },
      data,
      el,
    );
  } else {
    chart.setData(data);
    if (Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 220 });
  }
  el.dataset.points = String(series.length);
}

function render(s: NetworkSnapshot): void {
  latest = s;
  $('online').textContent = String(s.online);
  $('gflops').textContent = s.gflopsNow >= 100 ? s.gflopsNow.toFixed(0) : s.gflopsNow.toPrecision(3);
  $('jobs').textContent = String(s.jobsCompleted);
  renderVendors(s.byVendor);
  renderChart(s.series);
  renderBoards(s.leaderboard);
  document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
}

for (const tab of document.querySelectorAll<HTMLButtonElement>('[data-period]')) {
  tab.addEventListener('click', () => {
    period = tab.dataset.period as Period;
    for (const t of document.querySelectorAll('[data-period]')) t.setAttribute('aria-selected', String(t === tab));
    if (latest) renderBoards(latest.leaderboard);
  });
}

// One stream per viewer; the server computes each snapshot once for everyone. EventSource reconnects by itself.
const events = new EventSource('/api/v1/network/events');
events.addEventListener('snapshot', (e) => render(JSON.parse((e as MessageEvent<string>).data) as NetworkSnapshot));
