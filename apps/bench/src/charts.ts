import * as echarts from "echarts";
import type { Chart } from "./framework.js";

/**
 * Charts of the HTML reports, drawn by Apache ECharts' server-side SVG renderer: no browser and no
 * script in the page, one self-contained `<svg>` per chart.
 */

const WIDTH = 760;
const HEIGHT = 380;
const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#7f7f7f",
  "#bcbd22",
];

const axisName = (name: string, gap: number) => ({ name, nameLocation: "middle" as const, nameGap: gap });

function lineOption(chart: Extract<Chart, { kind: "line" }>): echarts.EChartsOption {
  const few = chart.series.every((s) => s.points.length <= 12);
  return {
    color: PALETTE,
    animation: false,
    grid: { left: 70, right: 170, top: 20, bottom: 50 },
    legend: { orient: "vertical", right: 0, top: "middle", type: "plain" },
    xAxis: {
      type: chart.logX ? "log" : "value",
      ...axisName(chart.logX ? `${chart.xLabel} (log)` : chart.xLabel, 30),
      // Nice bounds around the data (powers of ten on a log axis) rather than its raw extremes.
      scale: true,
    },
    yAxis: {
      type: chart.logY ? "log" : "value",
      ...axisName(chart.logY ? `${chart.yLabel} (log)` : chart.yLabel, 52),
      scale: true,
    },
    series: chart.series.map((s) => ({
      type: "line",
      name: s.name,
      showSymbol: few,
      data: s.points.filter((p) => (!chart.logX || p[0] > 0) && (!chart.logY || p[1] > 0)),
    })),
  };
}

function barOption(chart: Extract<Chart, { kind: "bar" }>): echarts.EChartsOption {
  return {
    color: PALETTE,
    animation: false,
    grid: { left: 70, right: 20, top: 30, bottom: 60 },
    xAxis: { type: "category", data: chart.bars.map((b) => b.label), axisLabel: { interval: 0, rotate: 15 } },
    yAxis: { type: "value", ...axisName(chart.unit, 52) },
    series: [
      {
        type: "bar",
        colorBy: "data",
        label: { show: true, position: "top" },
        data: chart.bars.map((b) => b.value),
      },
    ],
  };
}

/** One chart as a standalone SVG document string. */
export function renderChartSvg(chart: Chart): string {
  const instance = echarts.init(null, null, { renderer: "svg", ssr: true, width: WIDTH, height: HEIGHT });
  try {
    instance.setOption(chart.kind === "bar" ? barOption(chart) : lineOption(chart));
    return instance.renderToSVGString();
  } finally {
    instance.dispose();
  }
}
