// Labels of the viewer in English and Simplified Chinese, and the bilingual texts of the records.

export const LANGUAGES = ["en", "zh-Hans"];

const LABELS = {
  en: {
    "skip": "Skip to the map",
    "app.title": "NCDC data viewer",
    "app.subtitle": "National Cryosphere Desert Data Center",
    "map": "Map",
    "sidebar": "Datasets",
    "collections.heading": "Datasets",
    "collections.empty": "No dataset is published.",
    "collections.back": "All datasets",
    "share.open-access": "Open access",
    "share.login-access": "Sign-in access",
    "share.apply-access": "Access on application",
    "share.unknown": "Restricted",
    "badge.synthetic": "Synthetic sample",
    "badge.embargo": "Embargoed until {date}",
    "period": "Period",
    "extent": "Extent",
    "resolution": "Time resolution",
    "resolution.P1M": "monthly",
    "resolution.P1D": "daily",
    "resolution.P1Y": "yearly",
    "description": "Description",
    "lineage": "Lineage",
    "license": "License",
    "citation": "Citation",
    "citation.copy": "Copy citation",
    "citation.copied": "Citation copied.",
    "contacts": "Contacts",
    "keywords": "Keywords",
    "links": "Links",
    "link.about": "Dataset page at the data center",
    "link.cite-as": "Persistent identifier",
    "place": "Place",
    "items": "{count} items",
    "itemsLabel": "Items",
    "thumbnail": "Thumbnail of {title}",
    "role.pointOfContact": "contact",
    "role.custodian": "data manager",
    "role.author": "author",
    "role.metadataAuthor": "metadata author",
    "role.publisher": "publisher",
    "role.originator": "originator",
    "role.distributor": "distributor",
    "role.owner": "owner",
    "role.principalInvestigator": "principal investigator",
    "role.processor": "processor",
    "role.resourceProvider": "resource provider",
    "role.user": "user",
    "role.collaborator": "collaborator",
    "role.contributor": "contributor",
    "role.editor": "editor",
    "role.funder": "funder",
    "role.sponsor": "sponsor",
    "role.stakeholder": "stakeholder",
    "role.rightsHolder": "rights holder",
    "role.coAuthor": "co-author",
    "role.mediator": "mediator",
    "search.heading": "Search the map extent",
    "search.from": "From",
    "search.to": "To",
    "search.onlySelected": "Only the selected dataset",
    "search.submit": "Search",
    "search.more": "More results",
    "search.searching": "Searching…",
    "search.summary": "{shown} of {matched} items in the map extent",
    "search.summaryUnknown": "{shown} items in the map extent",
    "search.none": "No item in the map extent and time range.",
    "search.badRange": "The start date is after the end date.",
    "result.show": "Show {id} on the map",
    "layer.heading": "Layer",
    "layer.choose": "Show",
    "layer.opacity": "Opacity",
    "layer.mosaic": "Mosaic of the dataset",
    "layer.item": "Item {id}",
    "layer.backToMosaic": "Back to the mosaic",
    "layer.points": "Persistent scatterers (PS points), coloured by {column}",
    "layer.pointsTitle": "PS-InSAR points",
    "layer.noData": "Nothing to draw here.",
    "layer.denied401": "Sign in to see the data of this dataset.",
    "layer.denied403": "Your account has no access to the data of this dataset.",
    "layer.failed": "The layer could not be loaded.",
    "legend": "Legend",
    "legend.range": "{low} to {high} {unit}",
    "time.heading": "Time",
    "time.prev": "Previous time step",
    "time.next": "Next time step",
    "time.play": "Play",
    "time.pause": "Pause",
    "time.slider": "Time step",
    "inspect.heading": "At this point",
    "inspect.center": "Inspect the map centre",
    "inspect.loading": "Reading values…",
    "inspect.value": "Value",
    "inspect.valueAt": "Value on {date}",
    "inspect.noValue": "No data at this point.",
    "inspect.series": "Time series at {lon}, {lat}",
    "inspect.seriesPoint": "Displacement of point {code}",
    "inspect.attributes": "Attributes",
    "inspect.table": "Values",
    "inspect.date": "Date",
    "inspect.noPoint": "No PS point near here.",
    "inspect.pickLayer": "Choose a dataset, then click the map to read its values.",
    "inspect.distance": "{m} m from the clicked place",
    "close": "Close",
    "error.load": "Could not load: {what}",
    "loading": "Loading…",
    "chart.empty": "No values to plot.",
    "chart.label": "{title}: {count} values from {first} to {last}",
  },
  "zh-Hans": {
    "skip": "跳到地图",
    "app.title": "数据浏览",
    "app.subtitle": "国家冰川冻土沙漠科学数据中心",
    "map": "地图",
    "sidebar": "数据集",
    "collections.heading": "数据集",
    "collections.empty": "尚未发布数据集。",
    "collections.back": "全部数据集",
    "share.open-access": "开放获取",
    "share.login-access": "登录获取",
    "share.apply-access": "申请获取",
    "share.unknown": "受限",
    "badge.synthetic": "合成样例数据",
    "badge.embargo": "保护期至 {date}",
    "period": "时间范围",
    "extent": "空间范围",
    "resolution": "时间分辨率",
    "resolution.P1M": "月",
    "resolution.P1D": "日",
    "resolution.P1Y": "年",
    "description": "简介",
    "lineage": "数据来源与加工方法",
    "license": "许可协议",
    "citation": "引用方式",
    "citation.copy": "复制引用",
    "citation.copied": "已复制引用。",
    "contacts": "联系人",
    "keywords": "关键词",
    "links": "链接",
    "link.about": "数据中心的数据集页面",
    "link.cite-as": "永久标识",
    "place": "地点",
    "items": "{count} 个条目",
    "itemsLabel": "条目",
    "thumbnail": "{title} 的缩略图",
    "role.pointOfContact": "联系人",
    "role.custodian": "数据管理者",
    "role.author": "作者",
    "role.metadataAuthor": "元数据作者",
    "role.publisher": "出版者",
    "role.originator": "创建者",
    "role.distributor": "分发者",
    "role.owner": "所有者",
    "role.principalInvestigator": "负责人",
    "role.processor": "处理者",
    "role.resourceProvider": "资源提供者",
    "role.user": "用户",
    "role.collaborator": "合作者",
    "role.contributor": "贡献者",
    "role.editor": "编辑",
    "role.funder": "资助者",
    "role.sponsor": "赞助者",
    "role.stakeholder": "利益相关者",
    "role.rightsHolder": "权利人",
    "role.coAuthor": "合著者",
    "role.mediator": "协调者",
    "search.heading": "检索地图范围",
    "search.from": "起始日期",
    "search.to": "截止日期",
    "search.onlySelected": "仅检索所选数据集",
    "search.submit": "检索",
    "search.more": "更多结果",
    "search.searching": "正在检索…",
    "search.summary": "地图范围内共 {matched} 个条目，显示 {shown} 个",
    "search.summaryUnknown": "地图范围内显示 {shown} 个条目",
    "search.none": "地图范围和时间范围内没有条目。",
    "search.badRange": "起始日期晚于截止日期。",
    "result.show": "在地图上显示 {id}",
    "layer.heading": "图层",
    "layer.choose": "显示",
    "layer.opacity": "不透明度",
    "layer.mosaic": "数据集镶嵌图",
    "layer.item": "条目 {id}",
    "layer.backToMosaic": "返回镶嵌图",
    "layer.points": "永久散射体（PS点），按 {column} 着色",
    "layer.pointsTitle": "PS-InSAR 点",
    "layer.noData": "此处没有可显示的数据。",
    "layer.denied401": "登录后才能查看此数据集的数据。",
    "layer.denied403": "您的账户无权查看此数据集的数据。",
    "layer.failed": "图层加载失败。",
    "legend": "图例",
    "legend.range": "{low} 至 {high} {unit}",
    "time.heading": "时间",
    "time.prev": "上一时间",
    "time.next": "下一时间",
    "time.play": "播放",
    "time.pause": "暂停",
    "time.slider": "时间",
    "inspect.heading": "该点数据",
    "inspect.center": "查询地图中心",
    "inspect.loading": "正在读取数值…",
    "inspect.value": "数值",
    "inspect.valueAt": "{date} 的数值",
    "inspect.noValue": "该点没有数据。",
    "inspect.series": "{lon}, {lat} 处的时间序列",
    "inspect.seriesPoint": "PS点 {code} 的形变",
    "inspect.attributes": "属性",
    "inspect.table": "数值",
    "inspect.date": "日期",
    "inspect.noPoint": "附近没有PS点。",
    "inspect.pickLayer": "请先选择数据集，再点击地图查询数值。",
    "inspect.distance": "距点击位置 {m} 米",
    "close": "关闭",
    "error.load": "无法加载：{what}",
    "loading": "正在加载…",
    "chart.empty": "没有可绘制的数值。",
    "chart.label": "{title}：{first} 至 {last} 共 {count} 个数值",
  },
};

let current = "en";

export function setLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : "en";
  return current;
}

export function language() {
  return current;
}

/** The label `key` in the current language, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = LABELS[current][key] ?? LABELS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
}

/** Whether `key` has a label (used for optional translations such as contact roles). */
export function has(key) {
  return key in LABELS.en;
}

/** Apply the labels to the static page: `data-i18n` (text) and `data-i18n-label` (aria-label and title). */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    const label = t(element.dataset.i18nLabel);
    element.setAttribute("aria-label", label);
    element.title = label;
  }
  for (const button of root.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === current));
  }
  document.title = `${t("app.title")} · ${t("app.subtitle")}`;
}

const HAN = /[\u3400-\u9fff]/;

/**
 * One language of a bilingual label such as "Glacier surface velocity (冰川表面运动速度)":
 * the Chinese part in Chinese, the rest in English; the label as it is when it is not of that form.
 */
export function pickBilingual(text) {
  if (!text) return "";
  const match = /^(.*\S)\s*[(（]([^()（）]+)[)）]\s*$/u.exec(text);
  if (!match || !HAN.test(match[2]) || HAN.test(match[1])) return text;
  return current === "zh-Hans" ? match[2].trim() : match[1].trim();
}

/** A Collection's text field in the current language: `ncdc:i18n` for Chinese, the document's own for English. */
export function collectionText(collection, field) {
  if (current === "zh-Hans") {
    const zh = collection?.["ncdc:i18n"]?.["zh-Hans"]?.[field];
    if (zh) return zh;
  }
  if (field === "processing:lineage") {
    const provider = (collection.providers || []).find((p) => p["processing:lineage"]);
    return collection["processing:lineage"] || provider?.["processing:lineage"] || "";
  }
  return collection?.[field] ?? "";
}
