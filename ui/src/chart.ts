import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import Chart from 'chart.js/auto';
import type { SpendSeries } from './types.js';

/**
 * Past this many bars (buckets × series) they are too thin to read and slow to draw: a stacked
 * area instead (a week by day for 50 goals is 400 bars; a week by hour, 8,400).
 */
const MAX_BARS = 2000;

/** A stable, distinguishable colour per series index (golden-angle hues). */
function colour(i: number): string {
  return `hsl(${(i * 137.508) % 360} 62% 52%)`;
}

function makeChart(canvas: HTMLCanvasElement, type: 'bar' | 'line'): Chart<'bar' | 'line'> {
  return new Chart<'bar' | 'line'>(canvas, {
    type,
    data: { labels: [], datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      normalized: true,
      interaction: { mode: 'index', intersect: false },
      elements: { point: { radius: 0 }, line: { borderWidth: 1 } },
      scales: {
        x: { stacked: true, ticks: { maxTicksLimit: 16 } },
        y: { stacked: true, title: { display: true, text: 'USD' } },
      },
      plugins: { legend: { position: 'right' } },
    },
  });
}

/**
 * Spend over time as a Chart.js stacked chart (bars, or a stacked area past MAX_BARS bars),
 * one dataset per series. Below it, each dataset's total as the chart holds it (read back from
 * the chart, so what is listed is what is drawn).
 */
export function StackedSpendChart(props: { data: SpendSeries }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<{ chart: Chart<'bar' | 'line'>; type: 'bar' | 'line' } | undefined>(
    undefined,
  );
  const [drawn, setDrawn] = useState<{ label: string; total: number; colour: string }[]>([]);

  useEffect(() => () => chart.current?.chart.destroy(), []);

  useEffect(() => {
    if (!canvas.current) return;
    const bars = props.data.buckets.length * props.data.series.length;
    const type = bars > MAX_BARS ? 'line' : 'bar';
    if (chart.current?.type !== type) {
      chart.current?.chart.destroy();
      chart.current = { chart: makeChart(canvas.current, type), type };
    }
    const current = chart.current.chart;
    current.data.labels = props.data.buckets;
    current.data.datasets = props.data.series.map((s, i) => ({
      label: s.key,
      data: s.costUsd,
      backgroundColor: colour(i),
      borderColor: colour(i),
      ...(type === 'line' ? { fill: i === 0 ? 'origin' : '-1' } : { stack: 'spend' }),
    }));
    current.update();
    setDrawn(
      current.data.datasets.map((d, i) => ({
        label: d.label ?? '',
        total: (d.data as number[]).reduce((a, b) => a + b, 0),
        colour: colour(i),
      })),
    );
  }, [props.data]);

  return html`<div>
    <div class="chart"><canvas ref=${canvas} data-testid="spend-chart"></canvas></div>
    <ul
      class="legend"
      data-testid="chart-series"
      data-bucket=${props.data.bucket}
      data-from=${props.data.from}
      data-buckets=${props.data.buckets.length}
    >
      ${drawn.map(
        (d) =>
          html`<li data-series=${d.label} data-total=${d.total}>
            <span class="swatch" style=${{ background: d.colour }}></span>${`${d.label} `}
            <b>$${d.total.toFixed(6)}</b>
          </li>`,
      )}
    </ul>
  </div>`;
}
